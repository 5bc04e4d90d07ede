//! The stable-toolchain side of the request-decoding fuzz target (`broker/fuzz`): random and
//! mutated frames must decode to a request or an error, never a panic.
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::ApiKey;
use proptest::prelude::*;
use spate_broker::protocol::decode_request;
use spate_broker::protocol::versions::SUPPORTED;

/// A header for a supported API and version followed by arbitrary bytes: this gets past the
/// version check into the body decoders, where the interesting failures are.
fn frame_for_supported_api() -> impl Strategy<Value = Bytes> {
    (
        0..SUPPORTED.len(),
        any::<u16>(),
        proptest::collection::vec(any::<u8>(), 0..512),
    )
        .prop_map(|(i, v, body)| {
            let (api, min, max) = SUPPORTED[i];
            let version = min + (v as i16).rem_euclid(max - min + 1);
            let mut b = BytesMut::new();
            b.put_i16(api as i16);
            b.put_i16(version);
            b.put_i32(1);
            b.put_slice(&body);
            b.freeze()
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4000))]

    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = decode_request(Bytes::from(data));
    }

    #[test]
    fn arbitrary_bodies_never_panic(frame in frame_for_supported_api()) {
        let _ = decode_request(frame);
    }
}

#[test]
fn huge_array_counts_are_an_error_not_an_abort() {
    // Metadata v1: topics array with 2^31-1 entries and no bytes behind it.
    let mut b = BytesMut::new();
    b.put_i16(ApiKey::Metadata as i16);
    b.put_i16(1);
    b.put_i32(1);
    b.put_i16(-1); // null client id
    b.put_i32(i32::MAX);
    assert!(decode_request(b.freeze()).is_err());
}
