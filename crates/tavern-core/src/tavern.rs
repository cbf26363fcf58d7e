//! The [`Tavern`] service itself: what it holds (the store, the runtime,
//! sealed secrets, settings, and the signals between its loops). Each
//! resource's operations live in a file of their own, each `impl Tavern`.

use std::sync::Arc;

use tavern_runtime::Runtime;
use tavern_runtime::releases::Releases;
use tavern_store::Store;
use tokio::sync::Notify;

use crate::auth::Passwords;
use crate::limits::{LoginLimiter, LoginLimits};
use crate::secrets::SecretBox;
use crate::settings::Settings;

/// The service. Cheap to clone.
#[derive(Clone)]
pub struct Tavern {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) secrets: SecretBox,
    pub(crate) passwords: Passwords,
    /// Sign-in attempts, limited per client address and per (username,
    /// address).
    pub(crate) logins: LoginLimiter,
    pub(crate) settings: Arc<Settings>,
    pub(crate) runtime: Arc<dyn Runtime>,
    pub(crate) releases: Arc<Releases>,
    /// Wakes the reconciler when desired state changes.
    pub(crate) wake: Arc<Notify>,
    /// Wakes the scheduler when sessions change.
    pub(crate) schedule_wake: Arc<Notify>,
    /// Wakes the keeper of worlds' names in DNS when worlds come or go.
    pub(crate) dns_wake: Arc<Notify>,
    /// Wakes the keeper of worlds' storage when worlds come or go.
    pub(crate) storage_wake: Arc<Notify>,
    /// Worlds' object storage, when `[storage]` gives them some.
    pub(crate) uploads: Option<Arc<crate::uploads::WorldUploads>>,
    /// Open connections to each world, counted by the proxy.
    pub(crate) activity: crate::activity::Activity,
    /// Where worlds answer, for the proxy (the reconciler publishes it).
    pub(crate) routes: Arc<tokio::sync::watch::Sender<Arc<crate::routes::RouteTable>>>,
    /// Backups and restores under way.
    pub(crate) backup_work: Arc<crate::work::BackupWork>,
    /// Uploads surveyed for an import, waiting for their sender's yes.
    pub(crate) held_imports: Arc<crate::imported::HeldImports>,
    /// The package library's folder, and how packages are fetched.
    pub(crate) library: tavern_packages::Library,
    pub(crate) fetcher: tavern_packages::fetch::Fetcher,
    /// Packages being fetched into the library.
    pub(crate) package_jobs: Arc<crate::package_jobs::PackageJobs>,
}

impl Tavern {
    pub fn new(
        store: Arc<dyn Store>,
        secrets: SecretBox,
        settings: Settings,
        runtime: Arc<dyn Runtime>,
        releases: Arc<Releases>,
    ) -> Self {
        let library = tavern_packages::Library::new(settings.packages.dir.clone());
        library.clear_incoming();
        Self {
            library,
            fetcher: tavern_packages::fetch::Fetcher::default(),
            package_jobs: Arc::default(),
            store,
            secrets,
            passwords: Passwords::new(2),
            logins: LoginLimiter::new(&LoginLimits::default()),
            settings: Arc::new(settings),
            runtime,
            releases,
            wake: Arc::new(Notify::new()),
            schedule_wake: Arc::new(Notify::new()),
            dns_wake: Arc::new(Notify::new()),
            storage_wake: Arc::new(Notify::new()),
            uploads: None,
            routes: Arc::new(tokio::sync::watch::Sender::new(Arc::default())),
            activity: crate::activity::Activity::default(),
            backup_work: Arc::default(),
            held_imports: Arc::default(),
        }
    }

    /// Gives worlds object storage for their uploads.
    pub fn with_uploads(mut self, uploads: crate::uploads::WorldUploads) -> Self {
        self.uploads = Some(Arc::new(uploads));
        self
    }

    /// Worlds' object storage, when they have some.
    pub fn uploads(&self) -> Option<&Arc<crate::uploads::WorldUploads>> {
        self.uploads.as_ref()
    }

    /// The proxy's handle for counting open connections to worlds.
    pub fn activity(&self) -> crate::activity::Activity {
        self.activity.clone()
    }

    /// The route table as it changes.
    pub fn routes(&self) -> tokio::sync::watch::Receiver<Arc<crate::routes::RouteTable>> {
        self.routes.subscribe()
    }

    pub fn runtime(&self) -> &Arc<dyn Runtime> {
        &self.runtime
    }

    /// Resolves when desired state changed (the reconciler waits on it).
    pub fn wake_handle(&self) -> Arc<Notify> {
        self.wake.clone()
    }

    /// A world's wish changed: wakes the reconciler here and, through the
    /// store, on the other Taverns that share it (the leader acts on it).
    pub(crate) fn wake_reconciler(&self) {
        self.wake.notify_one();
        self.announce();
    }

    /// Tells the other Taverns on the store that something changed, in the
    /// background (a lost notice waits for their next pass).
    pub(crate) fn announce(&self) {
        let store = self.store.clone();
        tokio::spawn(async move {
            if let Err(e) = store.announce().await {
                tracing::debug!(error = %e, "announcing a change to the other replicas");
            }
        });
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }
}
