//! Replication: the replica set and ISR as the metadata names them, what the leader knows of
//! its followers, the high watermark, leading and stepping down, and the follower's side of
//! its log (fetch position, fetched appends, truncation).
use std::collections::HashMap;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use spate_log::LogError;
use tokio::sync::watch;

use super::{load_producers, Partition, State};
use crate::producer::{snapshot, ProducerStates};

/// Cluster mode: what the leader knows of a follower (Kafka's `Replica` state).
#[derive(Debug, Clone, Copy)]
pub struct Follower {
    /// The follower's log end offset: the offset of its last fetch; -1 before its first.
    pub leo: i64,
    /// When it was last known to be caught up with the leader's log end.
    pub caught_up_ms: i64,
    /// The leader's log end and the time when it answered the previous fetch.
    last_fetch_leo: i64,
    pub last_fetch_ms: i64,
}

/// Cluster mode: the replica set as the metadata last said, and the followers' progress.
#[derive(Debug, Default)]
pub(super) struct Replicas {
    /// The high watermark is computed from the ISR (cluster mode); otherwise it is the log end.
    tracked: bool,
    me: i32,
    replicas: Vec<i32>,
    isr: Vec<i32>,
    partition_epoch: i32,
    /// Where the leader epoch this replica leads in starts.
    epoch_start: i64,
    followers: HashMap<i32, Follower>,
}

/// A snapshot for the leader's ISR maintenance.
#[derive(Debug, Clone)]
pub struct ReplicaView {
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    pub partition_epoch: i32,
    pub high_watermark: i64,
    pub log_end_offset: i64,
    pub epoch_start: i64,
    pub followers: HashMap<i32, Follower>,
}

impl Partition {
    /// Cluster mode: the replica set, ISR and partition epoch the metadata names. The high
    /// watermark is from now on the minimum log end over the ISR while this replica leads.
    pub fn set_assignment(&self, me: i32, replicas: &[i32], isr: &[i32], partition_epoch: i32) {
        let _ = self.with(|s| {
            let mut r = self.replicas.lock();
            if !r.tracked {
                // Pin the high watermark: unset, the log reports its end as the HW.
                let hw = s.log.high_watermark();
                s.log.set_high_watermark(hw);
                r.tracked = true;
            }
            r.me = me;
            r.replicas = replicas.to_vec();
            r.isr = isr.to_vec();
            r.partition_epoch = partition_epoch;
            r.followers
                .retain(|id, _| replicas.contains(id) && *id != me);
            self.update_hw(s, &r);
            Ok(())
        });
    }

    /// (ISR size, replica count): (1, 1) on a single node.
    pub fn isr_counts(&self) -> (usize, usize) {
        let r = self.replicas.lock();
        if r.replicas.is_empty() {
            (1, 1)
        } else {
            (r.isr.len(), r.replicas.len())
        }
    }

    pub fn replica_view(&self) -> Option<ReplicaView> {
        self.with(|s| {
            let r = self.replicas.lock();
            Ok(ReplicaView {
                replicas: r.replicas.clone(),
                isr: r.isr.clone(),
                partition_epoch: r.partition_epoch,
                high_watermark: s.log.high_watermark(),
                log_end_offset: s.log.log_end_offset(),
                epoch_start: r.epoch_start,
                followers: r.followers.clone(),
            })
        })
        .ok()
    }

    /// Leader: HW = min log end over the ISR, never moving backwards. Followers that have
    /// not fetched yet hold it where it is.
    pub(super) fn update_hw(&self, s: &mut State, r: &Replicas) {
        if !r.tracked || !self.is_leader() {
            return;
        }
        let leo = s.log.log_end_offset();
        let mut min = leo;
        for id in &r.isr {
            if *id == r.me {
                continue;
            }
            match r.followers.get(id) {
                Some(f) if f.leo >= 0 => min = min.min(f.leo),
                _ => return,
            }
        }
        let old = s.log.high_watermark();
        if min > old {
            let hw = s.log.set_high_watermark(min);
            self.hw.send_if_modified(|v| {
                let changed = *v != hw;
                *v = hw;
                changed
            });
        } else {
            self.hw.send_if_modified(|v| {
                let changed = *v != old;
                *v = old;
                changed
            });
        }
    }

    /// Leader: a follower fetched at `fetch_offset`. Updates its log end and caught-up time
    /// (Kafka's rule: caught up now if at the log end, or as of the previous fetch if it has
    /// reached what the log end was then) and the high watermark. Returns the new HW.
    pub fn record_follower_fetch(&self, id: i32, fetch_offset: i64, now_ms: i64) -> i64 {
        self.with(|s| {
            let mut r = self.replicas.lock();
            if id == r.me || !r.replicas.contains(&id) {
                // Not a follower of this partition: nothing to record.
                return Ok(s.log.high_watermark());
            }
            let leo = s.log.log_end_offset();
            let offset = fetch_offset.min(leo);
            let f = r.followers.entry(id).or_insert(Follower {
                leo: -1,
                caught_up_ms: 0,
                last_fetch_leo: -1,
                last_fetch_ms: 0,
            });
            if offset >= leo {
                f.caught_up_ms = now_ms;
            } else if offset >= f.last_fetch_leo && f.last_fetch_leo >= 0 {
                f.caught_up_ms = f.caught_up_ms.max(f.last_fetch_ms);
            }
            f.leo = offset;
            f.last_fetch_leo = leo;
            f.last_fetch_ms = now_ms;
            self.update_hw(s, &r);
            Ok(s.log.high_watermark())
        })
        .unwrap_or(-1)
    }

    /// Waits for changes of the high watermark.
    pub fn subscribe_hw(&self) -> watch::Receiver<i64> {
        self.hw.subscribe()
    }

    /// Follower: (log end, latest epoch or -1, log start) to fetch from.
    pub fn fetch_position(&self) -> Result<(i64, i32, i64), LogError> {
        self.with(|s| {
            Ok((
                s.log.log_end_offset(),
                s.log.latest_epoch().unwrap_or(-1),
                s.log.log_start_offset(),
            ))
        })
    }

    /// OffsetsForLeaderEpoch on this log.
    pub fn end_offset_for_epoch(&self, epoch: i32) -> Result<Option<(i32, i64)>, LogError> {
        self.with(|s| Ok(s.log.end_offset_for_epoch(epoch)))
    }

    /// Follower: appends batches fetched from the leader, as they are, and records their
    /// producers. Returns how many records they hold (from the headers the append parsed).
    pub fn append_as_follower(&self, records: Bytes) -> Result<u64, LogError> {
        self.with(|s| {
            let base_before = s.log.active_base_offset();
            let info = s.log.append_as_follower(records.clone())?;
            self.apply_appended(s, &records, &info.batches, base_before);
            Ok(info
                .batches
                .iter()
                .map(|b| u64::try_from(b.record_count).unwrap_or(0))
                .sum())
        })
    }

    /// Follower: the leader's high watermark (clamped to the local log end).
    pub fn set_follower_hw(&self, hw: i64) {
        let _ = self.with(|s| {
            let hw = s.log.set_high_watermark(hw);
            self.hw.send_replace(hw);
            Ok(())
        });
    }

    /// Follower: drops everything from `offset` on and rebuilds producer state (snapshots
    /// past the new log end go).
    pub fn truncate_to(&self, offset: i64) -> Result<(), LogError> {
        self.with(|s| {
            s.log.truncate_to(offset)?;
            s.producers = load_producers(&s.log)?;
            Ok(())
        })
    }

    /// Follower: empties the log, which restarts at `offset`, and forgets every producer and
    /// snapshot.
    pub fn truncate_fully_and_start_at(&self, offset: i64) -> Result<(), LogError> {
        self.with(|s| {
            s.log.truncate_fully_and_start_at(offset)?;
            snapshot::delete_where(&self.dir, |_| true)?;
            s.producers = ProducerStates::default();
            Ok(())
        })
    }

    /// Cluster mode: does this replica lead the partition now?
    pub fn is_leader(&self) -> bool {
        self.led_epoch.load(Ordering::Acquire) >= 0 && !self.stepped_down.load(Ordering::Acquire)
    }

    /// Stops acting as leader in the current epoch (the controller session and the
    /// followers are lost). Requests waiting for the high watermark wake and fail with
    /// NOT_LEADER_OR_FOLLOWER. `true` if it was leading.
    pub fn step_down(&self) -> bool {
        if self.led_epoch.load(Ordering::Acquire) < 0
            || self.stepped_down.swap(true, Ordering::AcqRel)
        {
            return false;
        }
        self.hw.send_modify(|_| {});
        true
    }

    /// Leads again in the epoch it stepped down in: the session is back and the metadata,
    /// caught up with the controller, still names this broker leader at `epoch`.
    pub fn resume_leadership(&self, epoch: i32) -> bool {
        self.led_epoch.load(Ordering::Acquire) == epoch
            && self.stepped_down.swap(false, Ordering::AcqRel)
    }

    pub fn is_stepped_down(&self) -> bool {
        self.stepped_down.load(Ordering::Acquire)
    }

    /// The leader epoch clients are told: the one this replica leads in, 0 on a single node.
    pub fn leader_epoch(&self) -> i32 {
        self.led_epoch.load(Ordering::Acquire).max(0)
    }

    /// Cluster mode: the metadata names this broker leader at `epoch`. Records where the
    /// epoch starts in the log's epoch cache and stamps it on appended batches.
    pub fn become_leader(&self, epoch: i32) -> Result<(), LogError> {
        if self.led_epoch.load(Ordering::Acquire) == epoch {
            return Ok(());
        }
        self.with(|s| {
            s.log.assign_epoch(epoch, s.log.log_end_offset())?;
            s.log.set_leader_epoch(Some(epoch));
            let mut r = self.replicas.lock();
            r.epoch_start = s.log.log_end_offset();
            // Followers start afresh under a new leader: not caught up before their first
            // fetch, but given the lag time from now.
            let now = crate::context::now_ms();
            let me = r.me;
            let others: Vec<i32> = r.replicas.iter().copied().filter(|id| *id != me).collect();
            r.followers = others
                .into_iter()
                .map(|id| {
                    let f = Follower {
                        leo: -1,
                        caught_up_ms: now,
                        last_fetch_leo: -1,
                        last_fetch_ms: 0,
                    };
                    (id, f)
                })
                .collect();
            Ok(())
        })?;
        self.led_epoch.store(epoch, Ordering::Release);
        self.stepped_down.store(false, Ordering::Release);
        Ok(())
    }

    /// Cluster mode: another broker leads (or nobody does).
    pub fn become_follower(&self) {
        let led = self.led_epoch.swap(-1, Ordering::AcqRel);
        self.stepped_down.store(false, Ordering::Release);
        if led >= 0 {
            let _ = self.with(|s| {
                s.log.set_leader_epoch(None);
                self.replicas.lock().followers.clear();
                Ok(())
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use kafka_protocol::error::ResponseError;

    use super::super::tests::{batch, open};
    use crate::producer::snapshot;

    #[tokio::test]
    async fn a_leader_that_steps_down_fails_its_waiting_writes_and_leads_again_only_as_told() {
        let dir = tempfile::tempdir().unwrap();
        let p = std::sync::Arc::new(open(dir.path()).unwrap());
        p.set_assignment(1, &[1, 2], &[1, 2], 0);
        p.become_leader(3).unwrap();
        let last = p.append(batch(7, 0, false), 0).unwrap().last_offset;
        // An acks=all write waits for follower 2, which never fetches.
        let waiting =
            tokio::spawn(crate::replication::wait::Unreplicated::new(p.clone(), last).wait());
        tokio::task::yield_now().await;
        assert!(p.step_down());
        assert!(!p.is_leader() && p.is_stepped_down());
        assert_eq!(
            waiting.await.unwrap(),
            Err(ResponseError::NotLeaderOrFollower),
            "woken at once, not at its timeout"
        );
        assert!(!p.step_down(), "already stepped down");
        // The metadata still names it leader in epoch 3: becoming leader again in that epoch
        // (the applier re-applying) does not undo the step-down; only resuming does.
        p.become_leader(3).unwrap();
        assert!(!p.is_leader());
        assert!(!p.resume_leadership(2), "another epoch");
        assert!(p.resume_leadership(3));
        assert!(p.is_leader());
        // A new epoch, or following, clears it too.
        assert!(p.step_down());
        p.become_leader(4).unwrap();
        assert!(p.is_leader());
        assert!(p.step_down());
        p.become_follower();
        assert!(!p.is_stepped_down() && !p.is_leader());
        assert!(!p.step_down(), "a follower has nothing to step down from");
    }

    #[test]
    fn truncation_drops_snapshots_past_the_new_end_and_rebuilds_from_an_older_one() {
        let dir = tempfile::tempdir().unwrap();
        let p = open(dir.path()).unwrap();
        for seq in 0..6 {
            p.append(batch(7, seq, false), 0).unwrap();
        }
        let cut = p.positions().unwrap().2;
        p.append(batch(8, 0, true), 0).unwrap();
        p.close().unwrap();
        let p = open(dir.path()).unwrap();
        p.truncate_to(cut).unwrap();
        assert!(snapshot::list(dir.path())
            .unwrap()
            .iter()
            .all(|o| *o <= cut));
        // Producer 8's transaction is gone with its batch; producer 7 continues.
        assert_eq!(p.last_stable_offset().unwrap(), cut);
        assert!(p.producers().unwrap().iter().all(|v| v.producer_id == 7));
        assert!(p.append(batch(7, 6, false), 0).is_ok());
        p.truncate_fully_and_start_at(100).unwrap();
        assert!(snapshot::list(dir.path()).unwrap().is_empty());
        assert!(p.producers().unwrap().is_empty());
    }
}
