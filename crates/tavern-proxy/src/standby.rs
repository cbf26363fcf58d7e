//! The page a visitor sees when a world is not running: its name and its
//! state; while it starts, the page refreshes itself until the world
//! answers at the same address.

use tavern_core::routes::Route;
use tavern_types::{DesiredState, ObservedState};

fn escape(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '&' => "&amp;".to_owned(),
            '<' => "&lt;".to_owned(),
            '>' => "&gt;".to_owned(),
            '"' => "&quot;".to_owned(),
            '\'' => "&#39;".to_owned(),
            c => c.to_string(),
        })
        .collect()
}

/// What people read about the world's state.
fn describe(route: &Route) -> (&'static str, bool) {
    match (route.state, route.desired) {
        (ObservedState::Failed, _) => ("has failed", false),
        (_, DesiredState::Running) => ("is starting", true),
        (ObservedState::Stopping, _) => ("is going to sleep", true),
        _ => ("is sleeping", false),
    }
}

pub fn page(route: &Route) -> String {
    let (what, refresh) = describe(route);
    let name = escape(route.slug.as_str());
    let refresh = if refresh {
        r#"<meta http-equiv="refresh" content="3">"#
    } else {
        ""
    };
    let reason = route
        .reason
        .as_deref()
        .filter(|_| route.state == ObservedState::Failed)
        .map(|r| format!("<p class=\"reason\">{}</p>", escape(r)))
        .unwrap_or_default();
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">{refresh}\
         <title>{name}</title></head>\n<body><main><h1>{name}</h1>\
         <p class=\"state\">This world {what}.</p>{reason}</main></body></html>\n"
    )
}

#[cfg(test)]
mod tests {
    use tavern_types::Slug;

    use super::*;

    fn route(state: ObservedState, desired: DesiredState, reason: Option<&str>) -> Route {
        Route {
            slug: Slug::parse("dragon").unwrap(),
            upstream: None,
            state,
            desired,
            reason: reason.map(str::to_owned),
        }
    }

    #[test]
    fn says_the_state_and_refreshes_only_while_things_change() {
        let sleeping = page(&route(ObservedState::Stopped, DesiredState::Stopped, None));
        assert!(sleeping.contains("dragon") && sleeping.contains("is sleeping"));
        assert!(!sleeping.contains("refresh"));
        let starting = page(&route(ObservedState::Starting, DesiredState::Running, None));
        assert!(starting.contains("is starting") && starting.contains("refresh"));
        let failed = page(&route(
            ObservedState::Failed,
            DesiredState::Running,
            Some("crashed <5> times"),
        ));
        assert!(failed.contains("has failed") && failed.contains("crashed &lt;5&gt; times"));
    }
}
