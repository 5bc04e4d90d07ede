//! The classic (non-flexible) field encodings of Kafka's coordinator records, which
//! `__consumer_offsets` and `__transaction_state` both use: big-endian integers, strings with
//! an int16 length (-1 for null) and bytes with an int32 length.
use bytes::{Buf, BufMut, Bytes, BytesMut};

/// A field that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FieldError {
    #[error("needed {needed} bytes, {left} left")]
    Short { needed: usize, left: usize },
    #[error("null string")]
    NullString,
    #[error("string is not UTF-8: {0}")]
    Utf8(#[from] std::string::FromUtf8Error),
}

/// Reads fields from the front of a record's key or value.
pub struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf }
    }

    fn need(&self, n: usize) -> Result<(), FieldError> {
        if self.buf.len() < n {
            return Err(FieldError::Short {
                needed: n,
                left: self.buf.len(),
            });
        }
        Ok(())
    }

    pub fn i8(&mut self) -> Result<i8, FieldError> {
        self.need(1)?;
        Ok(self.buf.get_i8())
    }

    pub fn i16(&mut self) -> Result<i16, FieldError> {
        self.need(2)?;
        Ok(self.buf.get_i16())
    }

    pub fn i32(&mut self) -> Result<i32, FieldError> {
        self.need(4)?;
        Ok(self.buf.get_i32())
    }

    pub fn i64(&mut self) -> Result<i64, FieldError> {
        self.need(8)?;
        Ok(self.buf.get_i64())
    }

    pub fn nullable_string(&mut self) -> Result<Option<String>, FieldError> {
        let Ok(len) = usize::try_from(self.i16()?) else {
            return Ok(None);
        };
        self.need(len)?;
        let s = String::from_utf8(self.buf[..len].to_vec())?;
        self.buf.advance(len);
        Ok(Some(s))
    }

    pub fn string(&mut self) -> Result<String, FieldError> {
        self.nullable_string()?.ok_or(FieldError::NullString)
    }

    /// Bytes with an int32 length. Null reads as empty: nullable on the wire only in theory,
    /// Kafka never writes it where these records have bytes.
    pub fn bytes(&mut self) -> Result<Bytes, FieldError> {
        let Ok(len) = usize::try_from(self.i32()?) else {
            return Ok(Bytes::new());
        };
        self.need(len)?;
        let out = Bytes::copy_from_slice(&self.buf[..len]);
        self.buf.advance(len);
        Ok(out)
    }
}

/// A string, cut at `i16::MAX` bytes (no name Kafka allows comes near).
pub fn put_str(b: &mut BytesMut, s: &str) {
    let s = &s.as_bytes()[..s.len().min(i16::MAX as usize)];
    b.put_i16(s.len() as i16);
    b.put_slice(s);
}

pub fn put_nullable_str(b: &mut BytesMut, s: Option<&str>) {
    match s {
        Some(s) => put_str(b, s),
        None => b.put_i16(-1),
    }
}

pub fn put_bytes(b: &mut BytesMut, bytes: &[u8]) {
    b.put_i32(bytes.len() as i32);
    b.put_slice(bytes);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_it_writes_and_refuses_short_or_null_fields() {
        let mut b = BytesMut::new();
        put_str(&mut b, "ab");
        put_nullable_str(&mut b, None);
        put_bytes(&mut b, &[7]);
        b.put_i32(-1);
        b.put_i8(-2);
        b.put_i64(9);
        let mut r = Reader::new(&b);
        assert_eq!(r.string().unwrap(), "ab");
        assert_eq!(r.nullable_string().unwrap(), None);
        assert_eq!(&r.bytes().unwrap()[..], &[7]);
        assert!(r.bytes().unwrap().is_empty(), "null bytes read as empty");
        assert_eq!((r.i8().unwrap(), r.i64().unwrap()), (-2, 9));
        assert_eq!(r.i16(), Err(FieldError::Short { needed: 2, left: 0 }));

        assert_eq!(
            Reader::new(&[0xff, 0xff]).string(),
            Err(FieldError::NullString)
        );
        assert_eq!(
            Reader::new(&[0, 3, b'a']).string(),
            Err(FieldError::Short { needed: 3, left: 1 })
        );
        assert!(matches!(
            Reader::new(&[0, 1, 0xff]).string(),
            Err(FieldError::Utf8(_))
        ));
        assert_eq!(
            Reader::new(&[0, 0, 0, 2, 1]).bytes(),
            Err(FieldError::Short { needed: 2, left: 1 })
        );
    }
}
