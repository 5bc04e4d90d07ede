//! Length-prefixed framing: every Kafka request is `int32 size` followed by `size` bytes.
use bytes::{Buf, Bytes, BytesMut};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    /// Kafka closes the connection on these (`socket.request.max.bytes`).
    #[error("frame of {size} bytes exceeds socket.request.max.bytes {max}")]
    TooLarge { size: i64, max: usize },
    #[error("negative frame size {0}")]
    Negative(i32),
}

/// Splits complete frames off the front of a read buffer.
#[derive(Debug, Clone)]
pub struct FrameDecoder {
    max_size: usize,
}

impl FrameDecoder {
    pub fn new(max_size: usize) -> Self {
        Self { max_size }
    }

    /// Returns the next complete frame body, `None` if more bytes are needed. The size is
    /// checked as soon as the prefix arrives, so an oversized frame is refused before it is
    /// buffered.
    pub fn decode(&self, buf: &mut BytesMut) -> Result<Option<Bytes>, FrameError> {
        if buf.len() < 4 {
            return Ok(None);
        }
        let size = i32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
        if size < 0 {
            return Err(FrameError::Negative(size));
        }
        let size = size as usize;
        if size > self.max_size {
            return Err(FrameError::TooLarge {
                size: size as i64,
                max: self.max_size,
            });
        }
        if buf.len() < 4 + size {
            buf.reserve(4 + size - buf.len());
            return Ok(None);
        }
        buf.advance(4);
        Ok(Some(buf.split_to(size).freeze()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_pipelined_frames_and_waits_for_partial_ones() {
        let d = FrameDecoder::new(100);
        let mut buf = BytesMut::new();
        buf.extend_from_slice(&[0, 0, 0, 2, b'a', b'b', 0, 0, 0, 3, b'c']);
        assert_eq!(
            d.decode(&mut buf).unwrap().unwrap(),
            Bytes::from_static(b"ab")
        );
        assert_eq!(d.decode(&mut buf).unwrap(), None);
        buf.extend_from_slice(b"de");
        assert_eq!(
            d.decode(&mut buf).unwrap().unwrap(),
            Bytes::from_static(b"cde")
        );
        assert!(buf.is_empty());
    }

    #[test]
    fn refuses_oversized_and_negative_sizes_before_buffering() {
        let d = FrameDecoder::new(10);
        let mut buf = BytesMut::from(&[0u8, 0, 0, 11][..]);
        assert_eq!(
            d.decode(&mut buf),
            Err(FrameError::TooLarge { size: 11, max: 10 })
        );
        let mut buf = BytesMut::from(&[0xffu8, 0xff, 0xff, 0xff][..]);
        assert_eq!(d.decode(&mut buf), Err(FrameError::Negative(-1)));
    }
}
