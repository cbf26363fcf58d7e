//! What worlds' object storage needs (`[storage]`), as the service holds
//! it: the driver, what becomes of a destroyed world's uploads, how often
//! they are counted. The work itself is `storage.rs`.

use std::sync::Arc;

use jiff::SignedDuration;
use tavern_storage::WorldStorage;

/// What worlds' storage needs.
pub struct WorldUploads {
    pub storage: Arc<dyn WorldStorage>,
    /// A destroyed world's uploads stay (its key is deleted either way).
    pub keep_on_destroy: bool,
    /// How often what each world holds is counted again.
    pub recount: SignedDuration,
    /// One world's place is made by one caller at a time (the leader's
    /// loop, or a world's start), so that the key kept is the one made last.
    pub(crate) making: tokio::sync::Mutex<()>,
}

impl WorldUploads {
    pub fn new(
        storage: Arc<dyn WorldStorage>,
        keep_on_destroy: bool,
        recount: SignedDuration,
    ) -> Self {
        Self {
            storage,
            keep_on_destroy,
            recount,
            making: tokio::sync::Mutex::new(()),
        }
    }
}
