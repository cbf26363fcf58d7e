//! `CoreError`: every way a request to the core can fail, each with a
//! stable snake_case code that the HTTP edge maps to a status in one place.

use tavern_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    /// A field is missing its shape or its rules (`code` names which rule).
    #[error("{message}")]
    Invalid {
        code: &'static str,
        field: &'static str,
        message: String,
    },
    #[error("authentication required: send a valid token")]
    Unauthenticated,
    #[error("wrong username or password")]
    InvalidCredentials,
    /// The password was right and the account has a second factor: the
    /// sign-in needs its code.
    #[error(
        "this account has a second factor: send the code from your authenticator app, or one of your recovery codes"
    )]
    SecondFactorRequired,
    /// A second factor's code that is wrong, or was used already.
    #[error("wrong code, or a code that was used already; wait for the next one")]
    WrongCode,
    /// Too many sign-in attempts: the next may come after this many
    /// seconds.
    #[error("too many sign-in attempts; try again in {0} s")]
    RateLimited(u64),
    #[error("{0}")]
    Forbidden(String),
    /// Beyond a limit of the owner's tier.
    #[error("{0}")]
    Quota(String),
    #[error("{} {key:?} not found", noun(.what))]
    NotFound { what: &'static str, key: String },
    /// The request clashes with what exists (`code` names the clash).
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    /// Every license key the world may use runs another world now or is
    /// reserved for a session soon.
    #[error("{0}")]
    NoLicenseFree(String),
    /// What this service was set up without (a `Tavern` whose settings
    /// have no backups, say).
    #[error("{0} are not set up on this server")]
    NotConfigured(&'static str),
    /// What this version cannot do.
    #[error("{0} is not implemented yet")]
    NotImplemented(&'static str),
    /// The database is out of reach for now (it is restarting, say).
    #[error("the database is unavailable; try again shortly")]
    Unavailable {
        #[source]
        source: StoreError,
    },
    #[error("internal error during {op}")]
    Internal {
        op: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// A record's kind in the words people use (the store says `instance`
/// where users say world).
pub fn noun(what: &str) -> &str {
    match what {
        "instance" => "world",
        "license" => "license key",
        other => other,
    }
}

impl CoreError {
    pub fn invalid(code: &'static str, field: &'static str, message: impl Into<String>) -> Self {
        Self::Invalid {
            code,
            field,
            message: message.into(),
        }
    }

    pub fn internal(
        op: &'static str,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Self::Internal {
            op,
            source: source.into(),
        }
    }

    /// The stable code clients match on.
    pub fn code(&self) -> &'static str {
        match self {
            CoreError::Invalid { code, .. } | CoreError::Conflict { code, .. } => code,
            CoreError::Unauthenticated => "unauthenticated",
            CoreError::InvalidCredentials => "invalid_credentials",
            CoreError::SecondFactorRequired => "second_factor_required",
            CoreError::WrongCode => "wrong_code",
            CoreError::RateLimited(_) => "rate_limited",
            CoreError::Forbidden(_) => "forbidden",
            CoreError::Quota(_) => "quota_exceeded",
            CoreError::NoLicenseFree(_) => "no_license_available",
            CoreError::NotFound { .. } => "not_found",
            CoreError::NotConfigured(_) => "not_configured",
            CoreError::NotImplemented(_) => "not_implemented",
            CoreError::Unavailable { .. } => "store_unavailable",
            CoreError::Internal { .. } => "internal",
        }
    }
}

impl From<crate::policy::quotas::Exceeded> for CoreError {
    fn from(e: crate::policy::quotas::Exceeded) -> Self {
        CoreError::Quota(e.message)
    }
}

impl From<StoreError> for CoreError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict { what, key } => CoreError::Conflict {
                code: match what {
                    "user" => "username_taken",
                    "instance" => "slug_taken",
                    _ => "conflict",
                },
                message: format!("{} {key:?} already exists", noun(what)),
            },
            StoreError::NotFound { what, key } => CoreError::NotFound { what, key },
            StoreError::InUse { what, key, by } => CoreError::Conflict {
                code: "in_use",
                message: format!("{} {key} is still used by {by}", noun(what)),
            },
            e @ StoreError::Unavailable { .. } => CoreError::Unavailable { source: e },
            e @ (StoreError::Corrupt { .. } | StoreError::Backend { .. }) => {
                CoreError::internal("store", e)
            }
        }
    }
}
