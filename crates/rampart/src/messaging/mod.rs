//! The SMS domain: phone numbers, sender IDs and bodies as types that parse (never just
//! validate), GSM-7/UCS-2 encoding and segmentation, and the message lifecycle.

pub mod body;
pub mod encoding;
pub mod phone;
pub mod sender;
pub mod status;

pub use body::{BodyError, MessageBody};
pub use encoding::{BodyInfo, Encoding};
pub use phone::{PhoneError, PhoneNumber};
pub use sender::{SenderError, SenderId};
pub use status::MessageStatus;
