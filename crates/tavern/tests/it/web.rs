//! A real headless Chromium driven over WebDriver (chromedriver, Debian's
//! chromium-driver), for the dashboard's tests: started per test on a
//! loopback port with a throwaway profile, stopped by its process group's
//! id when dropped. Where chromedriver is not installed the tests skip with
//! a message; under `CI=true` they fail.

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

use crate::support::free_ports;

pub struct Browser {
    pub client: Client,
    driver: Child,
    _profile: tempfile::TempDir,
}

fn find(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| names.iter().map(move |n| dir.join(n)))
        .find(|p| p.is_file())
}

impl Browser {
    /// A headless browser, phone-sized when `phone`; with JavaScript off
    /// when `script` is false. `None` (the test skips) without chromedriver.
    pub async fn start(script: bool, phone: bool) -> Option<Browser> {
        Self::start_with(script, phone, &[]).await
    }

    /// Like `start`, with more of Chromium's flags (e.g.
    /// `--host-resolver-rules=…`, to name a domain on loopback).
    pub async fn start_with(script: bool, phone: bool, flags: &[&str]) -> Option<Browser> {
        let (Some(driver_exe), Some(chromium)) = (
            find(&["chromedriver"]),
            find(&["chromium", "chromium-browser", "google-chrome"]),
        ) else {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CI=true but chromium and chromedriver are not installed (bash .ci/run installs them)"
            );
            eprintln!(
                "skipped: chromium and chromedriver are not installed (apt-get install chromium chromium-driver)"
            );
            return None;
        };
        let [port] = free_ports::<1>();
        let driver = Command::new(driver_exe)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own process group, so that the browsers it starts stop
            // with it.
            .process_group(0)
            .spawn()
            .expect("chromedriver starts");
        let profile = tempfile::tempdir().unwrap();
        let mut args = vec![
            "--headless=new".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            "--no-first-run".to_owned(),
            "--disable-extensions".to_owned(),
            "--disable-crash-reporter".to_owned(),
            format!("--user-data-dir={}", profile.path().display()),
            if phone {
                "--window-size=390,844".to_owned()
            } else {
                "--window-size=1280,900".to_owned()
            },
        ];
        if !script {
            args.push("--blink-settings=scriptEnabled=false".to_owned());
        }
        args.extend(flags.iter().map(|f| f.to_string()));
        let caps = json!({
            "browserName": "chrome",
            "goog:chromeOptions": { "binary": chromium, "args": args },
        });
        let mut builder =
            ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new());
        builder.capabilities(caps.as_object().unwrap().clone());
        let deadline = Instant::now() + Duration::from_secs(30);
        let client = loop {
            match builder.connect(&format!("http://127.0.0.1:{port}")).await {
                Ok(c) => break c,
                Err(e) => {
                    assert!(Instant::now() < deadline, "no WebDriver session: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        };
        Some(Browser {
            client,
            driver,
            _profile: profile,
        })
    }

    /// Ends the browser session; the driver stops when dropped.
    pub async fn close(self) {
        let _ = self.client.clone().close().await;
    }

    pub async fn goto(&self, url: &str) {
        self.client.goto(url).await.unwrap();
    }

    pub async fn path(&self) -> String {
        self.client.current_url().await.unwrap().path().to_owned()
    }

    /// Fills in a form field (found by CSS) with `text`.
    pub async fn fill(&self, css: &str, text: &str) {
        let el = self.el(css).await;
        el.clear().await.unwrap();
        el.send_keys(text).await.unwrap();
    }

    /// The element `css` finds; a missing one fails with the page's text.
    /// Pages load after a click: it is looked for up to 10 s.
    pub async fn el(&self, css: &str) -> fantoccini::elements::Element {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match self.client.find(Locator::Css(css)).await {
                Ok(el) => return el,
                Err(_) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => {
                    let url = self.client.current_url().await.map(|u| u.to_string());
                    let body = match self.client.find(Locator::Css("body")).await {
                        Ok(b) => b.text().await.unwrap_or_default(),
                        Err(_) => String::new(),
                    };
                    panic!("no {css} on {url:?}: {e}\n--- the page says:\n{body}");
                }
            }
        }
    }

    /// Sets a field's value directly (date and time fields take typing
    /// in the browser's own format).
    pub async fn set(&self, css: &str, value: &str) {
        self.el(css).await;
        self.client
            .execute(
                "document.querySelector(arguments[0]).value = arguments[1];",
                vec![json!(css), json!(value)],
            )
            .await
            .unwrap();
    }

    /// Clicks a button or link and waits (up to 10 s) for the page it
    /// leads to: until the old page's root is gone.
    pub async fn click(&self, css: &str) {
        let old = self.el("html").await;
        self.el(css).await.click().await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while old.tag_name().await.is_ok() {
            assert!(Instant::now() < deadline, "clicking {css} led nowhere");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn text(&self, css: &str) -> String {
        self.el(css).await.text().await.unwrap()
    }

    pub async fn texts(&self, css: &str) -> Vec<String> {
        let mut out = Vec::new();
        for el in self.client.find_all(Locator::Css(css)).await.unwrap() {
            out.push(el.text().await.unwrap());
        }
        out
    }

    /// The `textContent` of every element `css` finds, also of those a
    /// browser does not render (an SVG's `<title>`), whose text WebDriver
    /// answers empty.
    pub async fn text_contents(&self, css: &str) -> Vec<String> {
        self.client
            .execute(
                "return [...document.querySelectorAll(arguments[0])].map(t => t.textContent)",
                vec![css.into()],
            )
            .await
            .unwrap()
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect()
    }

    /// Waits (up to 30 s) until the text of `css` satisfies `ok`, without
    /// reloading: what the page's own script shows.
    pub async fn wait_text(&self, css: &str, what: &str, ok: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(el) = self.client.find(Locator::Css(css)).await
                && let Ok(t) = el.text().await
                && ok(&t)
            {
                return t;
            }
            assert!(Instant::now() < deadline, "timed out waiting until {what}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Every field of the page has a label (or an accessible name), and
    /// the first thing the keyboard reaches is the skip link.
    pub async fn assert_accessible(&self) {
        let unlabelled = self
            .client
            .execute(
                "return [...document.querySelectorAll('input:not([type=hidden]), select, textarea')]\
                 .filter(e => e.labels.length === 0 && !e.getAttribute('aria-label'))\
                 .map(e => e.outerHTML)",
                vec![],
            )
            .await
            .unwrap();
        let path = self.path().await;
        assert_eq!(unlabelled, json!([]), "fields without a label on {path}");
        let first = self
            .client
            .execute(
                "return document.querySelector('a[href], button, input:not([type=hidden]), select').className",
                vec![],
            )
            .await
            .unwrap();
        assert_eq!(first, json!("skip"), "the skip link comes first on {path}");
    }

    /// A CSS property of the first element `css` finds, as the browser
    /// computed it (so: whether the page's stylesheet applied).
    pub async fn style(&self, css: &str, property: &str) -> String {
        self.el(css).await;
        self.client
            .execute(
                "return getComputedStyle(document.querySelector(arguments[0]))[arguments[1]]",
                vec![json!(css), json!(property)],
            )
            .await
            .unwrap()
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Waits (up to 30 s) until the page's text contains `what`, the page
    /// reloading itself meanwhile.
    pub async fn wait_body(&self, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(el) = self.client.find(Locator::Css("body")).await
                && el.text().await.is_ok_and(|t| t.contains(what))
            {
                return;
            }
            if Instant::now() > deadline {
                let body = self.text("body").await;
                panic!("the page never said {what:?}; it says:\n{body}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The session cookie the browser holds, as a `Cookie:` header.
    pub async fn session_cookie(&self) -> String {
        let c = self
            .client
            .get_named_cookie("tavern_session")
            .await
            .expect("signed in");
        format!("tavern_session={}", c.value())
    }

    /// Saves a screenshot of the page as a test artifact
    /// (`target/screenshots/NAME.png`), and as the README's picture under
    /// `docs/screenshots/` when `UPDATE_SCREENSHOTS=1`.
    pub async fn screenshot(&self, name: &str) {
        let png = self.client.screenshot().await.unwrap();
        assert!(png.starts_with(b"\x89PNG"), "a PNG");
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
        let dir = root.join("target/screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{name}.png")), &png).unwrap();
        if std::env::var("UPDATE_SCREENSHOTS").as_deref() == Ok("1") {
            let docs = root.join("docs/screenshots");
            std::fs::create_dir_all(&docs).unwrap();
            std::fs::write(docs.join(format!("{name}.png")), &png).unwrap();
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // The whole group: chromedriver and every browser process it began;
        // asked to stop first, so that they end cleanly.
        let group = format!("-{}", self.driver.id());
        let signal = |name: &str| {
            let _ = Command::new("kill")
                .args(["-s", name, "--", &group])
                .stderr(Stdio::null())
                .status();
        };
        signal("TERM");
        let deadline = Instant::now() + Duration::from_secs(3);
        while self.driver.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        signal("KILL");
        let _ = self.driver.wait();
    }
}
