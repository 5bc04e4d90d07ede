//! The sans-io wire layer: frames in, typed requests out; typed responses in, frames out.
//! Nothing here touches a socket, so every rule is testable with bytes alone.

pub mod frame;
pub mod request;
pub mod response;
pub mod versions;

pub use frame::{FrameDecoder, FrameError};
pub use request::{decode_request, DecodeError, Request, RequestEnvelope};
pub use response::{encode_response, Response};
