//! The HTTP API's requests and answers, shared by the server (tavern-http)
//! and the command-line client, with their OpenAPI schemas (`shapes` gives
//! the patterns of the text fields). With the `server` feature, also how
//! the core's views become the answers.

mod dto;
#[cfg(feature = "server")]
mod from_core;
mod packages;
pub mod shapes;
mod sign_in;

pub use dto::*;
pub use packages::*;
pub use sign_in::*;
