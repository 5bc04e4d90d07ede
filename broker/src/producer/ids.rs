//! Producer id allocation. Ids are reserved on disk in blocks before being handed out, so a
//! restarted broker never reuses one.
use std::io::Write;
use std::path::{Path, PathBuf};

const BLOCK: i64 = 1000;

#[derive(Debug)]
pub struct ProducerIdAllocator {
    path: PathBuf,
    next: i64,
    block_end: i64,
}

impl ProducerIdAllocator {
    pub fn open(data_dir: &Path) -> std::io::Result<Self> {
        let path = data_dir.join("producer-id-block");
        let start = match std::fs::read_to_string(&path) {
            Ok(s) => s.trim().parse().map_err(|_| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{}: not a number", path.display()),
                )
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(e),
        };
        Ok(Self {
            path,
            next: start,
            block_end: start,
        })
    }

    pub fn allocate(&mut self) -> std::io::Result<i64> {
        if self.next >= self.block_end {
            let end = self.next + BLOCK;
            let tmp = self.path.with_extension("tmp");
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(end.to_string().as_bytes())?;
            f.sync_all()?;
            std::fs::rename(&tmp, &self.path)?;
            self.block_end = end;
        }
        let id = self.next;
        self.next += 1;
        Ok(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_reuses_an_id_after_restart() {
        let dir = tempfile::tempdir().unwrap();
        let mut a = ProducerIdAllocator::open(dir.path()).unwrap();
        assert_eq!(a.allocate().unwrap(), 0);
        assert_eq!(a.allocate().unwrap(), 1);
        drop(a);
        let mut b = ProducerIdAllocator::open(dir.path()).unwrap();
        assert_eq!(b.allocate().unwrap(), BLOCK);
    }
}
