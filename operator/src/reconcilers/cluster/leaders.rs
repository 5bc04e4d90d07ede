//! Preferred leader election: hand leadership back to each partition's first replica, e.g.
//! after a broker came back and its partitions are still led elsewhere.

use kube::runtime::events::EventType;

use super::StepCtx;
use crate::kafka::TopicPartition;
use crate::Result;

/// Elects the preferred leader of `partitions`.
pub(super) async fn elect_preferred(s: &StepCtx<'_>, partitions: &[TopicPartition]) -> Result<()> {
    s.admin.elect_preferred_leaders(partitions).await?;
    let note = format!(
        "Preferred leader election for {} partitions",
        partitions.len()
    );
    s.ctx
        .event(s.c, EventType::Normal, "LeadersRebalanced", note)
        .await;
    Ok(())
}
