//! Against the Discord stand-in (Discord's documented OAuth2 requests and
//! answers): the code flow with PKCE and `state`, who signed in and their
//! guild roles, and every way the exchange must fail: a wrong verifier, a
//! code used twice, a wrong client secret, a person who said no.

use tavern_sso::testing::discord::{Account, StandIn};
use tavern_sso::testing::query_param as param;
use tavern_sso::{Discord, DiscordSettings, SsoError};

const CALLBACK: &str = "http://localhost:8080/auth/sso/discord/callback";
const GUILD: &str = "81384788765712384";

fn settings(stand_in: &StandIn, secret: &str, guild: Option<&str>) -> DiscordSettings {
    DiscordSettings {
        base_url: stand_in.base_url.clone(),
        client_id: "1234567890".into(),
        client_secret: secret.into(),
        redirect_url: CALLBACK.into(),
        guild_id: guild.map(str::to_owned),
    }
}

async fn stand_in() -> StandIn {
    let s = StandIn::start("1234567890", "app-secret", CALLBACK).await;
    s.sign_in_as(&Account::new("80351110224678912", "nelly", Some("Nelly")));
    s
}

#[tokio::test]
async fn a_member_signs_in_with_their_roles_and_the_code_works_once() {
    let s = stand_in().await;
    s.join_guild(GUILD, "80351110224678912", &["41771983423143936"]);
    let discord = Discord::new(&settings(&s, "app-secret", Some(GUILD))).unwrap();
    let begun = discord.begin();
    assert_eq!(
        param(&begun.url, "code_challenge_method").as_deref(),
        Some("S256")
    );
    assert_eq!(
        param(&begun.url, "scope").as_deref(),
        Some("identify guilds.members.read")
    );
    assert_eq!(param(&begun.url, "state"), Some(begun.state.clone()));
    let back = s.authorize(&begun.url, true).await;
    assert!(back.starts_with(CALLBACK), "{back}");
    assert_eq!(param(&back, "state"), Some(begun.state.clone()));
    let code = param(&back, "code").unwrap();
    let who = discord.finish(&code, &begun.pkce_verifier).await.unwrap();
    assert_eq!(who.id, "80351110224678912");
    assert_eq!(who.username, "nelly");
    assert_eq!(who.global_name.as_deref(), Some("Nelly"));
    assert_eq!(who.guild_roles, Some(vec!["41771983423143936".to_owned()]));
    // The same code again is refused by Discord.
    let again = discord.finish(&code, &begun.pkce_verifier).await;
    assert!(matches!(again, Err(SsoError::Exchange(_))), "{again:?}");
    assert!(s.refused().iter().any(|r| r.contains("\"code\"")));

    // Allowed once, the next sign-in is not asked again (prompt=none).
    let begun = discord.begin();
    let back = s.authorize(&begun.url, true).await;
    assert!(param(&back, "code").is_some());
}

#[tokio::test]
async fn someone_outside_the_guild_has_no_roles_and_without_a_guild_none_are_asked() {
    let s = stand_in().await;
    let discord = Discord::new(&settings(&s, "app-secret", Some(GUILD))).unwrap();
    let begun = discord.begin();
    let back = s.authorize(&begun.url, true).await;
    let who = discord
        .finish(&param(&back, "code").unwrap(), &begun.pkce_verifier)
        .await
        .unwrap();
    assert_eq!(who.guild_roles, None);

    let plain = Discord::new(&settings(&s, "app-secret", None)).unwrap();
    let begun = plain.begin();
    assert_eq!(param(&begun.url, "scope").as_deref(), Some("identify"));
    let back = s.authorize(&begun.url, true).await;
    let who = plain
        .finish(&param(&back, "code").unwrap(), &begun.pkce_verifier)
        .await
        .unwrap();
    assert_eq!(
        (who.id.as_str(), who.guild_roles),
        ("80351110224678912", None)
    );
}

#[tokio::test]
async fn a_wrong_verifier_a_wrong_secret_and_a_refusal_sign_nobody_in() {
    let s = stand_in().await;
    let discord = Discord::new(&settings(&s, "app-secret", None)).unwrap();

    // Another sign-in's verifier (a code stolen from its callback).
    let begun = discord.begin();
    let other = discord.begin();
    let back = s.authorize(&begun.url, true).await;
    let code = param(&back, "code").unwrap();
    let stolen = discord.finish(&code, &other.pkce_verifier).await;
    assert!(matches!(stolen, Err(SsoError::Exchange(_))), "{stolen:?}");
    assert!(s.refused().iter().any(|r| r.contains("code_verifier")));

    // An application that does not know its secret.
    let wrong = Discord::new(&settings(&s, "not-the-secret", None)).unwrap();
    let begun = wrong.begin();
    let back = s.authorize(&begun.url, true).await;
    let refused = wrong
        .finish(&param(&back, "code").unwrap(), &begun.pkce_verifier)
        .await;
    assert!(matches!(refused, Err(SsoError::Exchange(_))), "{refused:?}");
    assert!(s.refused().iter().any(|r| r.starts_with("invalid_client")));

    // The person says no: Discord sends the browser back without a code.
    s.sign_in_as(&Account::new("175928847299117063", "mason", None));
    let begun = discord.begin();
    let back = s.authorize(&begun.url, false).await;
    assert_eq!(param(&back, "error").as_deref(), Some("access_denied"));
    assert_eq!(param(&back, "code"), None);
    assert_eq!(param(&back, "state"), Some(begun.state));
}
