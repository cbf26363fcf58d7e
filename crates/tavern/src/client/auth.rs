//! `tavern login`: signing in with a password, a token or through the
//! browser (`--sso`), and storing the token.

use std::io::{IsTerminal as _, Write as _};

use anyhow::Context as _;
use tavern_api::{LoginRequest, LoginResponse, UserJson};

use super::commands::stdin_line;
use super::http::{Api, Credentials, normalise_server, save_credentials};

#[derive(clap::Args)]
pub struct LoginArgs {
    /// The Tavern server, e.g. http://localhost:8080.
    #[arg(long, env = "TAVERN_SERVER")]
    server: String,
    /// Your username (asked for when missing).
    #[arg(long)]
    username: Option<String>,
    /// Read the password from the first line of standard input.
    #[arg(long, conflicts_with = "token_stdin")]
    password_stdin: bool,
    /// Store an API token read from standard input instead of signing in
    /// with a password (e.g. the admin token `tavern serve` printed).
    #[arg(long)]
    token_stdin: bool,
    /// For an account with a second factor: the code from its app, or a
    /// recovery code (asked for when needed and missing; read from the
    /// next line of standard input when that is not a terminal).
    #[arg(long, conflicts_with = "token_stdin")]
    code: Option<String>,
    /// Sign in through the browser, in any way the dashboard offers (the
    /// community's Discord or identity provider, or a password): approve
    /// there and the browser hands this client its token.
    #[arg(long, conflicts_with_all = ["username", "password_stdin", "token_stdin", "code"])]
    sso: bool,
    /// With --sso: only print the address to open, do not open a browser.
    #[arg(long, requires = "sso")]
    no_browser: bool,
}

pub async fn login(args: LoginArgs) -> anyhow::Result<()> {
    let server = normalise_server(&args.server)?;
    let token = if args.token_stdin {
        stdin_line("token")?
    } else if args.sso {
        super::sso::sign_in(&server, !args.no_browser).await?
    } else {
        let username = match args.username {
            Some(u) => u,
            None => {
                eprint!("Username: ");
                std::io::stderr().flush().ok();
                stdin_line("username")?
            }
        };
        let password = if args.password_stdin || !std::io::stdin().is_terminal() {
            stdin_line("password")?
        } else {
            rpassword::prompt_password("Password: ").context("cannot read the password")?
        };
        let api = Api::new(&server, None)?;
        let mut request = LoginRequest {
            username,
            password,
            code: args.code,
        };
        let answer: LoginResponse = match api.post_for("/api/v1/auth/login", &request).await {
            Err(e)
                if request.code.is_none()
                    && e.to_string().ends_with("(second_factor_required)") =>
            {
                if std::io::stdin().is_terminal() {
                    eprint!("Code from your authenticator app (or a recovery code): ");
                    std::io::stderr().flush().ok();
                }
                request.code = Some(stdin_line("code")?);
                api.post_for("/api/v1/auth/login", &request).await?
            }
            other => other?,
        };
        answer.token
    };
    let me: UserJson = Api::new(&server, Some(token.clone()))?
        .get_as("/api/v1/auth/whoami")
        .await?;
    let path = save_credentials(&Credentials { server, token })?;
    println!(
        "Signed in as {} ({}). Token stored in {}.",
        me.username,
        me.role,
        path.display()
    );
    Ok(())
}
