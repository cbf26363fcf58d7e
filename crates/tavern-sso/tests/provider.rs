//! Against a real OpenID provider (oidc-provider-mock, started here): the
//! whole code flow with PKCE, and every way a sign-in must fail: another
//! app's token (audience), a wrong nonce, a token whose signature or
//! payload was touched, an expired token, a code used twice, an issuer
//! where no provider answers. (This provider does not hold clients to
//! PKCE, so refusing a wrong verifier is a real provider's part: here the
//! challenge is seen to be sent.)

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use tavern_sso::testing::provider::Provider;
use tavern_sso::testing::query_param as param;
use tavern_sso::{Oidc, OidcSettings, SsoError};

const CALLBACK: &str = "http://localhost:8080/auth/sso/oidc/callback";

fn settings(provider: &Provider, client_id: &str) -> OidcSettings {
    OidcSettings {
        issuer: provider.issuer.clone(),
        client_id: client_id.to_owned(),
        client_secret: Some("client-secret".to_owned()),
        redirect_url: CALLBACK.to_owned(),
        scopes: vec!["email".into(), "profile".into()],
        groups_claim: Some("groups".into()),
    }
}

/// The provider's raw ID token for a sign-in of `sub` by `client_id`, as
/// its token endpoint gives it (the exchange done by hand).
async fn raw_id_token(provider: &Provider, client_id: &str, sub: &str) -> (String, String) {
    let oidc = Oidc::discover(&settings(provider, client_id))
        .await
        .unwrap();
    let begun = oidc.begin();
    let back = provider.authorize(&begun.url, sub).await;
    let code = param(&back, "code").unwrap();
    let answer: Value = reqwest::Client::new()
        .post(format!("{}/oauth2/token", provider.issuer))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!(
            "grant_type=authorization_code&code={code}&redirect_uri={}&client_id={client_id}&client_secret=client-secret&code_verifier={}",
            CALLBACK.replace(':', "%3A").replace('/', "%2F"),
            begun.pkce_verifier
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = answer["id_token"]
        .as_str()
        .unwrap_or_else(|| panic!("{answer}"))
        .to_owned();
    (token, begun.nonce)
}

fn refused_token(r: Result<tavern_sso::Identity, SsoError>, why: &str) {
    match r {
        Err(SsoError::Token(message)) => {
            assert!(message.to_lowercase().contains(why), "{why}: {message}");
        }
        other => panic!("{why}: {other:?}"),
    }
}

#[tokio::test]
async fn a_sign_in_goes_through_the_provider_and_comes_back_checked() {
    let Some(provider) = Provider::start() else {
        return;
    };
    provider
        .set_user(
            "ann-sub",
            &json!({"email": "ann@example.org", "email_verified": true, "name": "Ann",
                    "groups": ["tavern-admins", "players"]}),
        )
        .await;
    let oidc = Oidc::discover(&settings(&provider, "tavern"))
        .await
        .unwrap();
    let begun = oidc.begin();
    for p in ["state", "nonce", "code_challenge"] {
        assert!(param(&begun.url, p).is_some(), "no {p} in {}", begun.url);
    }
    assert_eq!(
        param(&begun.url, "code_challenge_method").as_deref(),
        Some("S256")
    );
    assert_eq!(param(&begun.url, "state").unwrap(), begun.state);
    assert!(param(&begun.url, "scope").unwrap().contains("openid"));
    // Each sign-in its own.
    let other = oidc.begin();
    assert_ne!(
        (other.state.as_str(), other.nonce.as_str()),
        (begun.state.as_str(), begun.nonce.as_str())
    );

    let back = provider.authorize(&begun.url, "ann-sub").await;
    assert!(back.starts_with(CALLBACK), "{back}");
    assert_eq!(param(&back, "state").unwrap(), begun.state);
    let code = param(&back, "code").unwrap();
    let who = oidc
        .finish(&code, &begun.pkce_verifier, &begun.nonce)
        .await
        .unwrap();
    assert_eq!(who.subject, "ann-sub");
    assert_eq!(who.email.as_deref(), Some("ann@example.org"));
    assert!(who.email_verified);
    assert_eq!(who.name.as_deref(), Some("Ann"));
    assert_eq!(who.groups, ["tavern-admins", "players"]);

    // The same code again: refused by the provider.
    let again = oidc.finish(&code, &begun.pkce_verifier, &begun.nonce).await;
    assert!(matches!(again, Err(SsoError::Exchange(_))), "{again:?}");
}

#[tokio::test]
async fn a_wrong_nonce_another_apps_token_and_a_touched_token_are_refused() {
    let Some(provider) = Provider::start() else {
        return;
    };
    provider
        .set_user("bob-sub", &json!({"email": "bob@example.org"}))
        .await;
    let oidc = Oidc::discover(&settings(&provider, "tavern"))
        .await
        .unwrap();

    let (token, nonce) = raw_id_token(&provider, "tavern", "bob-sub").await;
    let who = oidc.verify(&token, &nonce).unwrap();
    assert_eq!(who.subject, "bob-sub");
    // Not vouched for: an address alone never links an account.
    assert!(!who.email_verified);

    refused_token(oidc.verify(&token, "another-nonce"), "nonce");

    // A token the provider made for another app is not for Tavern.
    let (theirs, their_nonce) = raw_id_token(&provider, "another-app", "bob-sub").await;
    refused_token(oidc.verify(&theirs, &their_nonce), "audience");

    // A touched signature, or a touched payload under the old signature.
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    // (A middle character: the last one may carry only padding bits,
    // which a decoder may ignore.)
    let sig = parts[2].clone();
    let middle = sig.len() / 2;
    let flipped = if &sig[middle..=middle] == "A" {
        "B"
    } else {
        "A"
    };
    parts[2] = format!("{}{flipped}{}", &sig[..middle], &sig[middle + 1..]);
    refused_token(oidc.verify(&parts.join("."), &nonce), "signature");
    let payload: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(&parts[1]).unwrap()).unwrap();
    let mut forged = payload.clone();
    forged["sub"] = json!("mallory-sub");
    parts[1] = URL_SAFE_NO_PAD.encode(forged.to_string());
    parts[2] = sig;
    refused_token(oidc.verify(&parts.join("."), &nonce), "signature");
    assert!(matches!(
        oidc.verify("not a token", &nonce),
        Err(SsoError::Token(_))
    ));
}

#[tokio::test]
async fn an_expired_token_is_refused() {
    let Some(provider) = Provider::start_with(&["--token-max-age", "1"]) else {
        return;
    };
    let oidc = Oidc::discover(&settings(&provider, "tavern"))
        .await
        .unwrap();
    let (token, nonce) = raw_id_token(&provider, "tavern", "cat-sub").await;
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    refused_token(oidc.verify(&token, &nonce), "expire");
}

#[tokio::test]
async fn an_issuer_that_is_not_a_provider_is_refused() {
    let Some(provider) = Provider::start() else {
        return;
    };
    // Nothing listens there.
    let mut nowhere = settings(&provider, "tavern");
    nowhere.issuer = "http://127.0.0.1:9".into();
    assert!(matches!(
        Oidc::discover(&nowhere).await,
        Err(SsoError::Discovery { .. })
    ));
    let mut bad = settings(&provider, "tavern");
    bad.issuer = "not a url".into();
    assert!(matches!(
        Oidc::discover(&bad).await,
        Err(SsoError::Config(_))
    ));
}
