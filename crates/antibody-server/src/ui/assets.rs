//! The dashboard's own static files, embedded in the binary. Each is served under a name
//! carrying its content hash (`app-1a2b3c4d5e6f.js`), so browsers may keep it for a year:
//! a new build has new names. An `ETag` answers revalidation all the same.

use axum::extract::Path;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use std::sync::LazyLock;

struct Asset {
    /// The hashed name pages link to.
    name: String,
    etag: String,
    mime: &'static str,
    body: &'static [u8],
}

static ASSETS: LazyLock<Vec<Asset>> = LazyLock::new(|| {
    [
        (
            "app",
            "js",
            "text/javascript; charset=utf-8",
            include_bytes!("static/app.js").as_slice(),
        ),
        (
            "icon",
            "svg",
            "image/svg+xml",
            include_bytes!("static/icon.svg").as_slice(),
        ),
        (
            "app",
            "css",
            "text/css; charset=utf-8",
            include_bytes!("static/app.css").as_slice(),
        ),
    ]
    .into_iter()
    .map(|(stem, ext, mime, body)| {
        let hash = hex::encode(&Sha256::digest(body)[..6]);
        Asset {
            name: format!("{stem}-{hash}.{ext}"),
            etag: format!("\"{hash}\""),
            mime,
            body,
        }
    })
    .collect()
});

/// The URL of the embedded file `stem.ext` (`app.js`), for the templates.
pub fn url(file: &str) -> String {
    let (stem, ext) = file.rsplit_once('.').unwrap_or((file, ""));
    ASSETS
        .iter()
        .find(|a| a.name.starts_with(stem) && a.name.ends_with(&format!(".{ext}")))
        .map(|a| format!("/ui/static/{}", a.name))
        .unwrap_or_default()
}

/// `GET /ui/static/{file}`
pub async fn serve(Path(file): Path<String>, headers: HeaderMap) -> Response {
    let Some(a) = ASSETS.iter().find(|a| a.name == file) else {
        return super::pages::not_found_page();
    };
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == a.etag));
    let mut r = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        ([(header::CONTENT_TYPE, a.mime)], a.body).into_response()
    };
    let h = r.headers_mut();
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    if let Ok(v) = HeaderValue::from_str(&a.etag) {
        h.insert(header::ETAG, v);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_the_content_hash() {
        let js = url("app.js");
        let css = url("app.css");
        assert!(
            js.starts_with("/ui/static/app-") && js.ends_with(".js"),
            "{js}"
        );
        assert!(css.ends_with(".css"), "{css}");
        assert_ne!(js, css);
        assert_eq!(url("nope.png"), "");
    }
}
