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
    all.extend((0..240).map(|i| (format!("token{i}.png"), images[i % images.len()])));
    all.extend((0..3).map(|i| (format!("map{i}.png"), 1_000_000)));
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
        } else if name.ends_with(".png") {
            html.push_str(&format!("<img alt=\"\" src=\"{src}\">\n"));
        }
    }
    html.push_str("</body></html>\n");
    Html(html)
}

/// `GET /_stub/asset/{bytes}/{name}`: that many bytes (at most 8 MB) of a
/// harmless asset of the name's kind: a script or style sheet that is one
/// comment, or a valid image (a browser stops fetching an image it cannot
/// decode, and would not load the whole of it).
pub async fn asset(Path((bytes, name)): Path<(usize, String)>) -> Response {
    let bytes = bytes.min(8_000_000);
    let (kind, body) = match name.rsplit_once('.') {
        Some((_, "js")) => ("text/javascript", comment(bytes)),
        Some((_, "css")) => ("text/css", comment(bytes)),
        Some((_, "png")) => ("image/png", png(bytes)),
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

/// `/*xxx…*/`, `bytes` long (at least 4).
fn comment(bytes: usize) -> Vec<u8> {
    let mut body = b"/*".to_vec();
    body.resize(bytes.max(4) - 2, b'x');
    body.extend_from_slice(b"*/");
    body
}

/// A one-pixel PNG, `bytes` long (at least 79): its size is a private
/// ancillary chunk (`paDd`) before the pixel data, which a decoder reads
/// through and a viewer ignores.
fn png(bytes: usize) -> Vec<u8> {
    fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
        let len = u32::try_from(data.len()).expect("at most 8 MB");
        out.extend_from_slice(&len.to_be_bytes());
        let start = out.len();
        out.extend_from_slice(kind);
        out.extend_from_slice(data);
        let crc = crc32fast::hash(&out[start..]);
        out.extend_from_slice(&crc.to_be_bytes());
    }
    const FRAME: usize = 8 + 12 + 13 + 12 + 12 + 10 + 12;
    let mut out = Vec::with_capacity(bytes.max(FRAME));
    out.extend_from_slice(b"\x89PNG\r\n\x1a\n");
    // 1×1, 8-bit greyscale.
    chunk(&mut out, b"IHDR", &[0, 0, 0, 1, 0, 0, 0, 1, 8, 0, 0, 0, 0]);
    chunk(&mut out, b"paDd", &vec![b'x'; bytes.saturating_sub(FRAME)]);
    // One scanline (filter 0, one black pixel), deflated by zlib.
    chunk(
        &mut out,
        b"IDAT",
        &[0x78, 0x9c, 0x63, 0x60, 0, 0, 0, 0x02, 0, 0x01],
    );
    chunk(&mut out, b"IEND", &[]);
    out
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

    #[test]
    fn assets_are_as_long_as_asked() {
        for bytes in [79, 80, 3_000, 1_000_000] {
            let image = png(bytes);
            assert_eq!(image.len(), bytes);
            assert!(image.starts_with(b"\x89PNG\r\n\x1a\n"));
            assert!(image.ends_with(&[0, 0, 0, 0, b'I', b'E', b'N', b'D', 0xae, 0x42, 0x60, 0x82]));
            let script = comment(bytes);
            assert_eq!(script.len(), bytes);
            assert!(script.starts_with(b"/*") && script.ends_with(b"*/"));
        }
    }
}
