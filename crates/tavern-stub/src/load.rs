//! A page like Foundry's game page, for the world-load benchmark
//! (`bench/world-load.sh`): one HTML page that pulls about 300 assets of
//! Foundry's kinds and sizes (its big client script, systems' and modules'
//! scripts and styles, tokens, icons, a few maps), each served with its
//! content type.

use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

/// The assets: (file name, bytes), the same every time.
pub fn assets() -> Vec<(String, usize)> {
    let mut all = vec![("foundry.js".to_owned(), 3_000_000)];
    let scripts = [15_000, 40_000, 120_000, 250_000];
    all.extend((0..40).map(|i| (format!("module{i}.js"), scripts[i % scripts.len()])));
    let styles = [8_000, 30_000, 90_000];
    all.extend((0..15).map(|i| (format!("style{i}.css"), styles[i % styles.len()])));
    let images = [3_000, 12_000, 30_000, 60_000];
    all.extend((0..240).map(|i| (format!("token{i}.webp"), images[i % images.len()])));
    all.extend((0..3).map(|i| (format!("map{i}.webp"), 1_000_000)));
    all
}

/// `GET /_stub/world-load`: the page.
pub async fn page() -> Html<String> {
    let mut html = String::from(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Stand-in world</title>\n",
    );
    let assets = assets();
    for (name, bytes) in &assets {
        if name.ends_with(".css") {
            html.push_str(&format!(
                "<link rel=\"stylesheet\" href=\"asset/{bytes}/{name}\">\n"
            ));
        }
    }
    html.push_str("</head><body>\n");
    for (name, bytes) in &assets {
        let src = format!("asset/{bytes}/{name}");
        if name.ends_with(".js") {
            html.push_str(&format!("<script src=\"{src}\"></script>\n"));
        } else if name.ends_with(".webp") {
            html.push_str(&format!("<img alt=\"\" src=\"{src}\">\n"));
        }
    }
    html.push_str("</body></html>\n");
    Html(html)
}

/// `GET /_stub/asset/{bytes}/{name}`: that many bytes (at most 8 MB) of a
/// harmless asset of the name's kind.
pub async fn asset(Path((bytes, name)): Path<(usize, String)>) -> Response {
    let bytes = bytes.min(8_000_000);
    let (kind, open, close): (&str, &[u8], &[u8]) = match name.rsplit_once('.') {
        Some((_, "js")) => ("text/javascript", b"/*", b"*/"),
        Some((_, "css")) => ("text/css", b"/*", b"*/"),
        Some((_, "webp")) => ("image/webp", b"", b""),
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    let mut body = Vec::with_capacity(bytes.max(open.len() + close.len()));
    body.extend_from_slice(open);
    body.resize(bytes.saturating_sub(close.len()).max(open.len()), b'x');
    body.extend_from_slice(close);
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_is_about_three_hundred_assets_and_fifteen_megabytes() {
        let all = assets();
        let total: usize = all.iter().map(|(_, b)| b).sum();
        assert_eq!(all.len(), 299);
        assert!((12_000_000..18_000_000).contains(&total), "{total}");
    }
}
