//! The admins' pages: the licenses board (a timeline of the last 7 days,
//! the reservations ahead, and the keys: add, rename, pin, retire), users
//! and their tiers, invitations, usage charts, the audit log with filters,
//! and the installed releases.

use askama::Template;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::http::header::HeaderMap;
use axum::response::Response;
use axum::routing::{get, post};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp, ToSpan};
use serde::Deserialize;
use tavern_core::NewInvite;

use super::charts::{self, HourBars, Timeline};
use super::{Chrome, NoFields, Posted, Session, redirect_with, render, say, when};
use crate::AppState;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin", get(board))
        .route("/admin/licenses", post(add_key))
        .route("/admin/licenses/{id}", post(change_key))
        .route("/admin/licenses/{id}/remove", post(retire_key))
        .route("/admin/users", get(users))
        .route("/admin/users/{name}/tier", post(set_tier))
        .route(
            "/admin/users/{name}/second-factor/remove",
            post(remove_second_factor),
        )
        .route("/admin/users/{name}/links/unlink", post(unlink_account))
        .route("/admin/invites", get(invites).post(invite))
        .route("/admin/invites/{id}/revoke", post(revoke))
        .route("/admin/usage", get(usage))
        .route("/admin/audit", get(audit))
        .route("/admin/releases", get(releases))
}

/// Admins only; to anyone else these pages do not exist (the page that
/// says so, for them).
fn not_admin(session: &Session) -> Option<Response> {
    (!session.is_admin())
        .then(|| session.error_page(StatusCode::NOT_FOUND, "There is no such page."))
}

struct Reservation {
    license: String,
    slug: String,
    from: String,
    to: String,
    by: String,
}

struct Holder {
    id: String,
    label: String,
    /// The game master it is pinned to (a username), or empty: the pool.
    owner: String,
    last4: String,
    pinned: String,
    world: String,
    state: String,
}

#[derive(Template)]
#[template(path = "admin_board.html")]
struct BoardPage {
    chrome: Chrome,
    timeline: Timeline,
    holders: Vec<Holder>,
    reservations: Vec<Reservation>,
    running: usize,
    failed: usize,
    /// Who a key may be pinned to.
    game_masters: Vec<String>,
}

async fn board(State(s): State<AppState>, session: Session) -> Response {
    if let Some(r) = not_admin(&session) {
        return r;
    }
    let now = Timestamp::now();
    let from = now - SignedDuration::from_hours(24 * 7);
    let lanes = match s.tavern.license_board(&session.caller, from, now).await {
        Ok(l) => l,
        Err(e) => return session.core_error(e),
    };
    let overview = match s.tavern.admin_overview(&session.caller).await {
        Ok(o) => o,
        Err(e) => return session.core_error(e),
    };
    let holders = overview
        .licenses
        .iter()
        .map(|(l, holder)| Holder {
            id: l.license.id.to_string(),
            owner: l.owner.as_ref().map(|o| o.to_string()).unwrap_or_default(),
            label: l.license.label.clone(),
            last4: l.license.key_last4.clone(),
            pinned: l.owner.as_ref().map(|o| o.to_string()).unwrap_or_default(),
            world: holder
                .as_ref()
                .map(|i| i.slug.to_string())
                .unwrap_or_default(),
            state: holder
                .as_ref()
                .map(|i| tavern_types::state_word(i.state, i.desired_state).to_owned())
                .unwrap_or_default(),
        })
        .collect();
    let reservations = overview
        .sessions
        .iter()
        .map(|v| Reservation {
            license: v.license_label.clone(),
            slug: v.instance.to_string(),
            from: when(v.session.window_start),
            to: when(v.session.window_end),
            by: v.session.created_by.clone(),
        })
        .collect();
    let game_masters = match s.tavern.list_users(&session.caller).await {
        Ok(users) => users
            .into_iter()
            .filter(|u| u.role == tavern_types::Role::Gm)
            .map(|u| u.username.to_string())
            .collect(),
        Err(e) => return session.core_error(e),
    };
    let page = BoardPage {
        chrome: session.chrome("Licenses", "admin"),
        game_masters,
        timeline: charts::timeline(&lanes, from, now, now),
        holders,
        reservations,
        running: overview.running.len(),
        failed: overview.failed.len(),
    };
    render(&page.chrome, &page)
}

#[derive(Deserialize)]
struct KeyForm {
    label: String,
    #[serde(default)]
    key: String,
    /// A game master's username, or empty: the pool.
    #[serde(default)]
    owner: String,
}

fn pinned(owner: &str) -> Option<String> {
    Some(owner.trim().to_owned()).filter(|o| !o.is_empty())
}

/// Adds a key (its text is sealed at once and never shown again).
async fn add_key(
    State(s): State<AppState>,
    headers: HeaderMap,
    posted: Posted<KeyForm>,
) -> Response {
    let form = posted.form;
    let done = s
        .tavern
        .add_license(
            &posted.session.caller,
            tavern_core::NewLicense {
                label: form.label.trim().to_owned(),
                key: form.key.trim().to_owned(),
                owner: pinned(&form.owner),
            },
        )
        .await
        .map(|v| {
            format!(
                "The key {} (ending in {}) is added.",
                v.license.label, v.license.key_last4
            )
        });
    redirect_with(&s, &headers, "/admin", done.map_err(say))
}

/// Renames a key and pins it (or returns it to the pool).
async fn change_key(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    posted: Posted<KeyForm>,
) -> Response {
    let form = posted.form;
    let done = s
        .tavern
        .update_license(
            &posted.session.caller,
            &id,
            Some(form.label.trim().to_owned()),
            Some(pinned(&form.owner)),
        )
        .await
        .map(|v| match v.owner {
            Some(o) => format!("The key {} is pinned to {o}.", v.license.label),
            None => format!("The key {} is in the shared pool.", v.license.label),
        });
    redirect_with(&s, &headers, "/admin", done.map_err(say))
}

/// Retires a key: refused while a world uses it or a session reserves it.
async fn retire_key(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    posted: Posted<NoFields>,
) -> Response {
    let done = s
        .tavern
        .remove_license(&posted.session.caller, &id)
        .await
        .map(|()| "The key is retired: its text is gone from Tavern.".to_owned());
    redirect_with(&s, &headers, "/admin", done.map_err(say))
}

struct UserRow {
    name: String,
    role: String,
    tier: String,
    email: String,
    since: String,
}

#[derive(Template)]
#[template(path = "admin_users.html")]
struct UsersPage {
    chrome: Chrome,
    users: Vec<UserRow>,
    /// Outside accounts users may have linked: (provider, label).
    ways: Vec<(String, String)>,
    tiers: Vec<String>,
    default_tier: String,
}

async fn users(State(s): State<AppState>, session: Session) -> Response {
    if let Some(r) = not_admin(&session) {
        return r;
    }
    let list = match s.tavern.list_users(&session.caller).await {
        Ok(l) => l,
        Err(e) => return session.core_error(e),
    };
    let economy = &s.tavern.settings().economy;
    let page = UsersPage {
        chrome: session.chrome("Users", "admin"),
        ways: s.sign_in.offered(),
        users: list
            .iter()
            .map(|u| UserRow {
                name: u.username.to_string(),
                role: u.role.to_string(),
                tier: u.tier.clone().unwrap_or_default(),
                email: u.email.clone().unwrap_or_default(),
                since: when(u.created_at),
            })
            .collect(),
        tiers: economy.tiers.keys().cloned().collect(),
        default_tier: economy.default_tier.clone().unwrap_or_default(),
    };
    render(&page.chrome, &page)
}

#[derive(Deserialize)]
struct TierForm {
    #[serde(default)]
    tier: String,
}

async fn set_tier(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
    posted: Posted<TierForm>,
) -> Response {
    let tier = Some(posted.form.tier.trim().to_owned()).filter(|t| !t.is_empty());
    let said = match &tier {
        Some(t) => format!("{name} is now on the {t} tier."),
        None => format!("{name} is back on the default tier."),
    };
    let done = s
        .tavern
        .update_user(&posted.session.caller, &name, Some(tier), None, None)
        .await
        .map(|_| said);
    redirect_with(&s, &headers, "/admin/users", done.map_err(say))
}

/// For someone who lost their app and their recovery codes: their
/// password alone signs them in again, until they set up a new factor.
async fn remove_second_factor(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
    posted: Posted<NoFields>,
) -> Response {
    let done = s
        .tavern
        .remove_totp(&posted.session.caller, Some(&name), None)
        .await
        .map(|()| {
            format!("{name}'s second factor is removed: their password alone signs them in.")
        });
    redirect_with(&s, &headers, "/admin/users", done.map_err(say))
}

#[derive(Deserialize)]
struct UnlinkForm {
    /// `oidc` or `discord`.
    provider: String,
}

/// The user's account of a provider no longer signs them in (a lost or
/// taken-over outside account).
async fn unlink_account(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
    posted: Posted<UnlinkForm>,
) -> Response {
    let provider = &posted.form.provider;
    let done = s
        .tavern
        .unlink_outside(&posted.session.caller, Some(&name), provider)
        .await
        .map(|()| format!("{name}'s {provider} account is unlinked: it no longer signs them in."));
    redirect_with(&s, &headers, "/admin/users", done.map_err(say))
}

struct InviteRow {
    id: String,
    role: String,
    tier: String,
    uses: String,
    expires: String,
    by: String,
    spent: bool,
}

#[derive(Template)]
#[template(path = "admin_invites.html")]
struct InvitesPage {
    chrome: Chrome,
    invites: Vec<InviteRow>,
    tiers: Vec<String>,
    /// The address just made, shown this once.
    made: Option<String>,
}

async fn invites_page(s: &AppState, session: &Session, made: Option<String>) -> Response {
    let list = match s.tavern.list_invites(&session.caller).await {
        Ok(l) => l,
        Err(e) => return session.core_error(e),
    };
    let now = Timestamp::now();
    let page = InvitesPage {
        chrome: session.chrome("Invitations", "admin"),
        invites: list
            .iter()
            .map(|v| InviteRow {
                id: v.invite.id.to_string(),
                role: v.invite.role.to_string(),
                tier: v.invite.tier.clone().unwrap_or_default(),
                uses: format!("{} of {}", v.invite.uses, v.invite.max_uses),
                expires: when(v.invite.expires_at),
                by: v.invite.created_by.clone(),
                spent: v.spent(now),
            })
            .collect(),
        tiers: s.tavern.settings().economy.tiers.keys().cloned().collect(),
        made,
    };
    render(&page.chrome, &page)
}

async fn invites(State(s): State<AppState>, session: Session) -> Response {
    if let Some(r) = not_admin(&session) {
        return r;
    }
    invites_page(&s, &session, None).await
}

#[derive(Deserialize)]
struct InviteForm {
    #[serde(default)]
    role: String,
    #[serde(default)]
    tier: String,
    #[serde(default)]
    uses: String,
    #[serde(default)]
    days: String,
}

fn number(field: &str, value: &str) -> Result<Option<u32>, String> {
    match value.trim() {
        "" => Ok(None),
        v => v
            .parse()
            .map(Some)
            .map_err(|_| format!("{v:?} is not a number of {field}.")),
    }
}

/// Makes an invitation and shows its address, this once (not in a redirect:
/// the code is never in a URL the browser keeps).
async fn invite(
    State(s): State<AppState>,
    headers: HeaderMap,
    posted: Posted<InviteForm>,
) -> Response {
    let Posted { session, form } = posted;
    let parsed = number("uses", &form.uses).and_then(|u| Ok((u, number("days", &form.days)?)));
    let (uses, days) = match parsed {
        Ok(p) => p,
        Err(why) => return redirect_with(&s, &headers, "/admin/invites", Err(why)),
    };
    let made = s
        .tavern
        .create_invite(
            &session.caller,
            NewInvite {
                role: Some(form.role.trim().to_owned()).filter(|r| !r.is_empty()),
                tier: Some(form.tier.trim().to_owned()).filter(|t| !t.is_empty()),
                uses,
                expires_in_hours: days.map(|d| d.saturating_mul(24)),
            },
        )
        .await;
    match made {
        Ok(v) => invites_page(&s, &session, v.url).await,
        Err(e) => redirect_with(&s, &headers, "/admin/invites", Err(say(e))),
    }
}

async fn revoke(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    posted: Posted<NoFields>,
) -> Response {
    let done = s
        .tavern
        .revoke_invite(&posted.session.caller, &id)
        .await
        .map(|()| "Invitation withdrawn.".to_owned());
    redirect_with(&s, &headers, "/admin/invites", done.map_err(say))
}

struct UsageRow {
    user: String,
    hours: String,
    cost: String,
    credit: String,
    due: String,
    /// What the user's worlds hold in object storage (empty: none).
    stored: String,
}

#[derive(Template)]
#[template(path = "admin_usage.html")]
struct UsagePage {
    chrome: Chrome,
    chart: HourBars,
    month: String,
    rows: Vec<UsageRow>,
    currency: String,
    total_hours: String,
    total_cost: String,
    /// Worlds have object storage: its column is shown.
    storage_on: bool,
}

/// How many months the chart shows.
const CHART_MONTHS: i64 = 6;

async fn usage(State(s): State<AppState>, session: Session) -> Response {
    if let Some(r) = not_admin(&session) {
        return r;
    }
    let this_month = Timestamp::now()
        .to_zoned(TimeZone::UTC)
        .date()
        .first_of_month();
    let months: Vec<String> = (0..CHART_MONTHS)
        .rev()
        .filter_map(|n| this_month.checked_sub(n.months()).ok())
        .map(|d| d.strftime("%Y-%m").to_string())
        .collect();
    let mut reports = Vec::with_capacity(months.len());
    for m in &months {
        match s.tavern.usage_report(&session.caller, Some(m), None).await {
            Ok(r) => reports.push(r),
            Err(e) => return session.core_error(e),
        }
    }
    let mut users: Vec<String> = reports
        .iter()
        .flat_map(|r| r.users.iter().map(|(u, _)| u.to_string()))
        .collect();
    users.sort();
    users.dedup();
    let rows: Vec<(String, Vec<f64>)> = users
        .iter()
        .map(|u| {
            let hours = reports
                .iter()
                .map(|r| {
                    r.users
                        .iter()
                        .find(|(name, _)| name.as_str() == u)
                        .map_or(0.0, |(_, x)| x.hours)
                })
                .collect();
            (u.clone(), hours)
        })
        .collect();
    let Some(current) = reports.last() else {
        return session.error_page(StatusCode::INTERNAL_SERVER_ERROR, "No month to show.");
    };
    let page = UsagePage {
        chrome: session.chrome("Usage", "admin"),
        chart: charts::hour_bars(&months, &rows),
        month: current.month.clone(),
        rows: current
            .users
            .iter()
            .map(|(name, u)| UsageRow {
                user: name.to_string(),
                hours: format!("{:.1}", u.hours),
                cost: format!("{:.2}", u.cost),
                credit: format!("{:.2}", u.credit),
                due: format!("{:.2}", u.due),
                stored: current
                    .stored
                    .as_ref()
                    .map(|m| super::backups::size(m.get(&u.user).copied().unwrap_or(0)))
                    .unwrap_or_default(),
            })
            .collect(),
        storage_on: current.stored.is_some(),
        currency: current.currency.clone(),
        total_hours: format!("{:.1}", current.hours),
        total_cost: format!("{:.2}", current.cost),
    };
    render(&page.chrome, &page)
}

#[derive(Deserialize, Default)]
struct AuditQuery {
    #[serde(default)]
    actor: String,
    #[serde(default)]
    action: String,
    #[serde(default)]
    target: String,
    #[serde(default)]
    outcome: String,
}

struct EventRow {
    at: String,
    actor: String,
    action: String,
    target: String,
    outcome: String,
    detail: String,
}

#[derive(Template)]
#[template(path = "admin_audit.html")]
struct AuditPage {
    chrome: Chrome,
    q: AuditQuery,
    events: Vec<EventRow>,
    scanned: usize,
}

/// How far back the audit page reads.
const AUDIT_SCAN: u32 = 2000;

/// Whether an event passes the filters: each a case-insensitive part of
/// its field, the outcome exact.
fn passes(e: &tavern_store::Event, q: &AuditQuery) -> bool {
    let has = |field: &str, want: &str| {
        want.trim().is_empty() || field.to_lowercase().contains(&want.trim().to_lowercase())
    };
    has(&e.actor, &q.actor)
        && has(&e.action, &q.action)
        && has(&e.target, &q.target)
        && (q.outcome.trim().is_empty() || e.outcome.as_str() == q.outcome.trim())
}

async fn audit(
    State(s): State<AppState>,
    session: Session,
    Query(q): Query<AuditQuery>,
) -> Response {
    if let Some(r) = not_admin(&session) {
        return r;
    }
    let events = match s.tavern.list_events(&session.caller, AUDIT_SCAN).await {
        Ok(e) => e,
        Err(e) => return session.core_error(e),
    };
    let scanned = events.len();
    let page = AuditPage {
        chrome: session.chrome("Audit log", "admin"),
        events: events
            .iter()
            .filter(|e| passes(e, &q))
            .take(500)
            .map(|e| EventRow {
                at: e.at.strftime("%Y-%m-%d %H:%M:%S UTC").to_string(),
                actor: e.actor.clone(),
                action: e.action.clone(),
                target: e.target.clone(),
                outcome: e.outcome.as_str().to_owned(),
                detail: e.detail.clone().unwrap_or_default(),
            })
            .collect(),
        q,
        scanned,
    };
    render(&page.chrome, &page)
}

struct ReleaseRow {
    version: String,
    layout: String,
    worlds: String,
}

#[derive(Template)]
#[template(path = "admin_releases.html")]
struct ReleasesPage {
    chrome: Chrome,
    releases: Vec<ReleaseRow>,
}

async fn releases(State(s): State<AppState>, session: Session) -> Response {
    if let Some(r) = not_admin(&session) {
        return r;
    }
    let worlds = match s.tavern.list_instances(&session.caller).await {
        Ok(w) => w,
        Err(e) => return session.core_error(e),
    };
    let page = ReleasesPage {
        chrome: session.chrome("Releases", "admin"),
        releases: s
            .tavern
            .releases()
            .into_iter()
            .map(|r| {
                let using: Vec<String> = worlds
                    .iter()
                    .filter(|w| w.instance.release.as_deref() == Some(r.version.as_str()))
                    .map(|w| w.instance.slug.to_string())
                    .collect();
                ReleaseRow {
                    version: r.version,
                    layout: r.layout,
                    worlds: using.join(", "),
                }
            })
            .collect(),
    };
    render(&page.chrome, &page)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(actor: &str, action: &str, outcome: tavern_store::Outcome) -> tavern_store::Event {
        tavern_store::Event {
            id: tavern_types::EventId::new(),
            actor: actor.into(),
            action: action.into(),
            target: "instance:dragon".into(),
            outcome,
            detail: None,
            at: Timestamp::UNIX_EPOCH,
        }
    }

    #[test]
    fn audit_filters_match_parts_and_outcomes_exactly() {
        let ok = event("Alice", "instance.start", tavern_store::Outcome::Success);
        let q = |actor: &str, action: &str, outcome: &str| AuditQuery {
            actor: actor.into(),
            action: action.into(),
            target: String::new(),
            outcome: outcome.into(),
        };
        assert!(passes(&ok, &AuditQuery::default()));
        assert!(passes(&ok, &q("alice", "start", "")));
        assert!(!passes(&ok, &q("bob", "", "")));
        assert!(passes(
            &ok,
            &q("", "", tavern_store::Outcome::Success.as_str())
        ));
        assert!(!passes(&ok, &q("", "", "fail")));
    }

    #[test]
    fn numbers_in_forms_are_optional_but_numbers() {
        assert_eq!(number("uses", " "), Ok(None));
        assert_eq!(number("uses", "3"), Ok(Some(3)));
        assert!(number("days", "a week").unwrap_err().contains("days"));
    }
}
