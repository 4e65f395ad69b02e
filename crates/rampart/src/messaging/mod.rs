//! The SMS domain: phone numbers, sender IDs and bodies as types that parse (never just
//! validate), GSM-7/UCS-2 encoding and segmentation, the message lifecycle, and how long an
//! account keeps its messages.

pub mod body;
pub mod encoding;
pub mod keywords;
pub mod phone;
pub mod retention;
pub mod sender;
pub mod status;

pub use body::{BodyError, MessageBody};
pub use encoding::{BodyInfo, Encoding};
pub use phone::{PhoneError, PhoneNumber};
pub use sender::{SenderError, SenderId};
pub use status::MessageStatus;
