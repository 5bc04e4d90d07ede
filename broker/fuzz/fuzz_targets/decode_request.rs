//! Request decoding must never panic, whatever bytes a client sends.
#![no_main]
use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use spate_broker::protocol::{decode_request, FrameDecoder};

fuzz_target!(|data: &[u8]| {
    // As a bare frame body.
    let _ = decode_request(Bytes::copy_from_slice(data));
    // As a stream of length-prefixed frames.
    let decoder = FrameDecoder::new(1 << 20);
    let mut buf = BytesMut::from(data);
    while let Ok(Some(frame)) = decoder.decode(&mut buf) {
        let _ = decode_request(frame);
    }
});
