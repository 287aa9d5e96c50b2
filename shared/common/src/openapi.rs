//! The OpenAPI 3.1 document every HTTP-serving service publishes, and the
//! browsable page over it.
//!
//! [`document`] starts a service's document with what every service serves
//! (`/health`, `/metrics`, from the annotations on the handlers in
//! [`crate::health`]) and the schemas the API documents share ([`Detail`],
//! [`HnvAmount`], defined in `schemas` so that `health` can use them without
//! importing this module); a service with an API merges its own operations in.
//! [`docs_router`] serves the finished document at [`OPENAPI_PATH`] and a
//! browsable page at [`DOCS_PATH`].
//!
//! The page is Swagger UI (the npm package `swagger-ui-dist`, which renders
//! OpenAPI 3.1) and opens with no network: the service serves the page's
//! script and styles itself, under `/docs/`, and the document is embedded in
//! the page. A Content-Security-Policy lets the page run scripts of the
//! service's own origin only.
//!
//! Why the bundle is committed (`assets/swagger-ui/`, byte for byte the
//! files of the version `package.json` pins, which a test checks) and
//! compiled in with `include_bytes!`, rather than read from `node_modules/`
//! by a build script: `cargo build` then works on a fresh clone before
//! `npm ci` and in the Dockerfile's Rust stage, whose build context has no
//! `node_modules/` and no Node; nothing is downloaded at build time; and a
//! version bump is a reviewed diff (`package.json`, lockfile, the copied
//! files) rather than whatever `node_modules/` held when the binary was built.
//! The price is 2 MB of vendored, minified files in the repository.

use std::sync::Arc;

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use sha2::{Digest, Sha256};
use utoipa::ToSchema;
use utoipa::openapi::path::{HttpMethod, OperationBuilder};
use utoipa::openapi::{ContentBuilder, InfoBuilder, OpenApi, Ref, Response, ResponseBuilder};

use crate::health::{HealthBody, LivezBody};
pub use crate::schemas::{Detail, HnvAmount, OPERATIONS_TAG};

/// Where the JSON document is served.
pub const OPENAPI_PATH: &str = "/openapi.json";
/// Where the browsable page is served.
pub const DOCS_PATH: &str = "/docs";

/// The version of the npm package `swagger-ui-dist` whose files are in
/// `assets/swagger-ui/`; `package.json` pins the same one (a test checks).
pub const SWAGGER_UI_VERSION: &str = "5.36.0";

/// The page's Content-Security-Policy: scripts, styles and requests of the
/// service's own origin only. Inline styles are allowed (Swagger UI sets
/// style attributes); inline scripts are not, which is why the page's own
/// script is a file ([`DOCS_INIT`]). `connect-src 'self'` is for "Try it out".
pub const DOCS_CSP: &str = "default-src 'none'; script-src 'self'; \
    style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; \
    connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// How long browsers keep the page's assets: a year, unchanged. Safe because
/// the page's links carry a version ([`assets_version`]), so new files are
/// new URLs.
const ASSET_CACHE_CONTROL: &str = "public, max-age=31536000, immutable";

/// A file the docs page loads, served at `/docs/{name}`.
struct DocsAsset {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

/// Swagger UI's standalone browser bundle (scripts and React included).
const SWAGGER_UI_BUNDLE: DocsAsset = DocsAsset {
    name: "swagger-ui-bundle.js",
    content_type: "text/javascript; charset=utf-8",
    body: include_bytes!("../assets/swagger-ui/swagger-ui-bundle.js"),
};
/// Swagger UI's styles.
const SWAGGER_UI_CSS: DocsAsset = DocsAsset {
    name: "swagger-ui.css",
    content_type: "text/css; charset=utf-8",
    body: include_bytes!("../assets/swagger-ui/swagger-ui.css"),
};
/// The page's own script: starts Swagger UI on the embedded document.
const DOCS_INIT: DocsAsset = DocsAsset {
    name: "init.js",
    content_type: "text/javascript; charset=utf-8",
    body: include_bytes!("../assets/docs/init.js"),
};
/// The page; `{title}`, `{css}`, `{bundle}`, `{init}` and `{document}` are
/// filled in by [`docs_page`].
const DOCS_PAGE: &str = include_str!("../assets/docs/page.html");

impl DocsAsset {
    /// Where it is served.
    fn path(&self) -> String {
        format!("{DOCS_PATH}/{}", self.name)
    }

    /// The link the page uses: relative (so the page also works behind a
    /// proxy that mounts the service under a prefix) and versioned (so the
    /// long cache lifetime never serves a stale file): see [`assets_version`].
    fn link(&self, version: &str) -> String {
        format!("docs/{}?v={version}", self.name)
    }

    fn router(&self) -> Router {
        let (content_type, body) = (self.content_type, self.body);
        Router::new().route(
            &self.path(),
            get(move || async move {
                (
                    [
                        (header::CONTENT_TYPE, content_type),
                        (header::CACHE_CONTROL, ASSET_CACHE_CONTROL),
                        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
                    ],
                    body,
                )
            }),
        )
    }
}

/// The `?v=` of the assets' links: Swagger UI's version (its files change
/// only with it: a test holds them to the pinned npm package) and a hash of
/// the page's own script `init`. Hashing the 2 MB bundle too would cost
/// every service start, and so every test, tens of milliseconds in a debug
/// build.
fn assets_version(init: &[u8]) -> String {
    let hash: String = Sha256::digest(init)[..4]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("{SWAGGER_UI_VERSION}-{hash}")
}

/// The docs page of `doc`, with the document embedded.
fn docs_page(doc: &OpenApi, json: &str) -> String {
    // Inside a <script> element only `</script` (and `<!--`) can end the
    // text early: `<` only occurs inside JSON strings, where `\u003c` is the
    // same character.
    let embedded = json.replace('<', "\\u003c");
    let version = assets_version(DOCS_INIT.body);
    let title = doc
        .info
        .title
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    DOCS_PAGE
        .replace("{title}", &title)
        .replace("{css}", &SWAGGER_UI_CSS.link(&version))
        .replace("{bundle}", &SWAGGER_UI_BUNDLE.link(&version))
        .replace("{init}", &DOCS_INIT.link(&version))
        .replace("{document}", &embedded)
}
/// The operations every service serves, from the handlers' annotations.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(crate::health::livez, crate::health::health, crate::health::metrics),
    components(schemas(Detail, HnvAmount, HealthBody, LivezBody)),
    tags((name = OPERATIONS_TAG, description = "Health and Prometheus metrics, served by every HAVEN service"))
)]
struct OpsApi;

/// A documented error answer: `description`, with the [`Detail`] body
/// (`{"detail": ...}`) every refusal carries. For operations built or
/// amended by hand; annotated handlers name `body = Detail` themselves.
pub fn detail_response(description: &str) -> Response {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name(Detail::name())))
                .build(),
        )
        .build()
}

/// The start of `service`'s document: title, version, `/health`,
/// `/metrics` and the shared schemas. Merge the service's own operations in
/// with [`OpenApi::merge`], then serve it with [`docs_router`].
pub fn document(service: &str) -> OpenApi {
    let mut doc = <OpsApi as utoipa::OpenApi>::openapi();
    doc.info = InfoBuilder::new()
        .title(format!("HAVEN {service}"))
        .version(env!("CARGO_PKG_VERSION"))
        .description(Some(format!(
            "The HTTP interface of the HAVEN `{service}` service. Errors are JSON \
             `{{\"detail\": \"...\"}}`; amounts are exact decimal numbers of HNV."
        )))
        .build();
    doc
}

/// `GET /openapi.json` (the document, with these two routes added to it),
/// `GET /docs` (the browsable page) and the page's script and styles under
/// `/docs/` (not in the document: they are part of the page). The document
/// and the page are made once, here, not per request. Merge the result into
/// the service's router.
pub fn docs_router(mut doc: OpenApi) -> Router {
    let json_response = |description: &str, media: &str| {
        OperationBuilder::new()
            .tag(OPERATIONS_TAG)
            .summary(Some(description.to_owned()))
            .response(
                "200",
                ResponseBuilder::new()
                    .description(description)
                    .content(media, ContentBuilder::new().build())
                    .build(),
            )
            .build()
    };
    doc.paths.add_path_operation(
        OPENAPI_PATH,
        vec![HttpMethod::Get],
        json_response("This OpenAPI 3.1 document", "application/json"),
    );
    doc.paths.add_path_operation(
        DOCS_PATH,
        vec![HttpMethod::Get],
        json_response("A browsable page of this document", "text/html"),
    );
    // Serializing an `OpenApi` cannot fail (string keys, no non-finite
    // floats); an empty document is the harmless fallback if it ever did.
    let json: Arc<str> = doc.to_json().unwrap_or_else(|_| "{}".to_owned()).into();
    let html: Arc<str> = docs_page(&doc, &json).into();
    let assets = [&SWAGGER_UI_BUNDLE, &SWAGGER_UI_CSS, &DOCS_INIT]
        .into_iter()
        .fold(Router::new(), |router, asset| router.merge(asset.router()));
    assets
        .route(
            OPENAPI_PATH,
            get(move || {
                let json = Arc::clone(&json);
                async move {
                    (
                        [(header::CONTENT_TYPE, "application/json")],
                        json.to_string(),
                    )
                }
            }),
        )
        .route(
            DOCS_PATH,
            get(move || {
                let html = Arc::clone(&html);
                async move {
                    (
                        [
                            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                            // The page embeds the document: always revalidated.
                            (header::CACHE_CONTROL, "no-cache"),
                            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
                            (header::CONTENT_SECURITY_POLICY, DOCS_CSP),
                        ],
                        html.to_string(),
                    )
                        .into_response()
                }
            }),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn serve(router: Router) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await });
        format!("http://{addr}")
    }

    #[tokio::test]
    async fn the_document_is_openapi_3_1_with_the_shared_routes() {
        let base = serve(docs_router(document("test-svc"))).await;
        let res = reqwest::get(format!("{base}{OPENAPI_PATH}")).await.unwrap();
        assert_eq!(res.status(), 200);
        assert_eq!(res.headers()[header::CONTENT_TYPE], "application/json");
        let doc: serde_json::Value = res.json().await.unwrap();
        assert_eq!(doc["openapi"], "3.1.0");
        assert_eq!(doc["info"]["title"], "HAVEN test-svc");
        let paths = doc["paths"].as_object().unwrap();
        let mut listed: Vec<&str> = paths.keys().map(String::as_str).collect();
        listed.sort_unstable();
        assert_eq!(
            listed,
            ["/docs", "/health", "/livez", "/metrics", "/openapi.json"]
        );
        assert!(doc["paths"]["/health"]["get"]["responses"]["503"].is_object());
        assert_eq!(
            doc["components"]["schemas"]["Detail"]["required"],
            serde_json::json!(["detail"])
        );
        assert_eq!(
            doc["components"]["schemas"]["HnvAmount"]["type"],
            serde_json::json!("number")
        );

        let page = reqwest::get(format!("{base}{DOCS_PATH}")).await.unwrap();
        assert_eq!(page.status(), 200);
        let html = page.text().await.unwrap();
        // The document is embedded in the page: it renders without another request to us.
        assert!(html.contains("HAVEN test-svc"), "{html}");
        assert!(html.contains("\"/health\""), "{html}");
    }

    /// The `src`/`href` values of the page's scripts and stylesheets.
    fn links(html: &str) -> Vec<String> {
        ["<script src=\"", "<link rel=\"stylesheet\" href=\""]
            .iter()
            .flat_map(|start| html.split(start).skip(1))
            .map(|rest| rest[..rest.find('"').unwrap()].to_owned())
            .collect()
    }

    #[tokio::test]
    async fn the_page_loads_only_its_own_assets_under_a_strict_policy() {
        let base = serve(docs_router(document("test-svc"))).await;
        let page = reqwest::get(format!("{base}{DOCS_PATH}")).await.unwrap();
        assert_eq!(page.status(), 200);
        let headers = page.headers().clone();
        assert_eq!(headers[header::CONTENT_TYPE], "text/html; charset=utf-8");
        assert_eq!(headers[header::CONTENT_SECURITY_POLICY], DOCS_CSP);
        assert_eq!(headers[header::CACHE_CONTROL], "no-cache");
        let csp = DOCS_CSP.split(';').map(str::trim).collect::<Vec<_>>();
        assert!(csp.contains(&"script-src 'self'"), "{csp:?}");
        assert!(csp.contains(&"default-src 'none'"), "{csp:?}");
        let html = page.text().await.unwrap();
        assert!(
            !html.contains("http://") && !html.contains("https://"),
            "{html}"
        );

        let links = links(&html);
        assert_eq!(
            links.len(),
            3,
            "the bundle, the styles and the init script: {links:?}"
        );
        for (asset, content_type) in [
            (&SWAGGER_UI_BUNDLE, "text/javascript; charset=utf-8"),
            (&SWAGGER_UI_CSS, "text/css; charset=utf-8"),
            (&DOCS_INIT, "text/javascript; charset=utf-8"),
        ] {
            let link = links
                .iter()
                .find(|l| l.starts_with(&format!("docs/{}?v=", asset.name)))
                .unwrap_or_else(|| panic!("{} is not linked: {links:?}", asset.name));
            // Relative to the page at /docs, as a browser resolves it.
            let res = reqwest::get(format!("{base}/{link}")).await.unwrap();
            assert_eq!(res.status(), 200, "{link}");
            assert_eq!(res.headers()[header::CONTENT_TYPE], content_type, "{link}");
            assert_eq!(
                res.headers()[header::CACHE_CONTROL],
                "public, max-age=31536000, immutable"
            );
            assert_eq!(res.headers()[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
            assert_eq!(res.bytes().await.unwrap().as_ref(), asset.body, "{link}");
        }
        // The links change with Swagger UI's version and with the page's script.
        let version = assets_version(DOCS_INIT.body);
        assert!(
            version.starts_with(&format!("{SWAGGER_UI_VERSION}-")),
            "{version}"
        );
        assert_ne!(assets_version(b"// another script"), version);
    }

    #[test]
    fn a_document_cannot_close_the_script_element_it_is_embedded_in() {
        let mut doc = document("svc");
        doc.info.description = Some("</script><script>alert(1)</script> & <!-- more".to_owned());
        doc.info.title = "HAVEN <b>svc</b>".to_owned();
        let json = doc.to_json().unwrap();
        let html = docs_page(&doc, &json);
        let start = "<script id=\"openapi-document\" type=\"application/json\">";
        let from = html.find(start).unwrap() + start.len();
        let embedded = &html[from..from + html[from..].find("</script>").unwrap()];
        // Everything up to the first closing tag is the whole document.
        let parsed: serde_json::Value = serde_json::from_str(embedded).unwrap();
        assert_eq!(
            parsed,
            serde_json::from_str::<serde_json::Value>(&json).unwrap()
        );
        assert!(
            html.contains("<title>HAVEN &lt;b&gt;svc&lt;/b&gt;</title>"),
            "{html}"
        );
    }

    /// The committed files are the pinned npm package's, byte for byte: a
    /// version bump changes `package.json`, [`SWAGGER_UI_VERSION`] and the
    /// copies in `assets/swagger-ui/` together. Needs `npm ci` (which
    /// `cargo xtask test` runs), like the tests that run anvil.
    #[test]
    fn the_vendored_swagger_ui_is_the_pinned_npm_package() {
        // shared/common/../..
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let manifest: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(root.join("package.json")).unwrap())
                .unwrap();
        assert_eq!(
            manifest["devDependencies"]["swagger-ui-dist"], SWAGGER_UI_VERSION,
            "package.json pins another swagger-ui-dist than the committed copy"
        );
        let package = root.join("node_modules").join("swagger-ui-dist");
        let installed: serde_json::Value = std::fs::read_to_string(package.join("package.json"))
            .map(|text| serde_json::from_str(&text).unwrap())
            .unwrap_or_else(|err| {
                panic!(
                    "{} is missing ({err}): run `npm ci` at the workspace root",
                    package.display()
                )
            });
        assert_eq!(
            installed["version"], SWAGGER_UI_VERSION,
            "node_modules holds another version: run `npm ci`"
        );
        for asset in [&SWAGGER_UI_BUNDLE, &SWAGGER_UI_CSS] {
            let npm = std::fs::read(package.join(asset.name)).unwrap();
            assert!(
                npm == asset.body,
                "assets/swagger-ui/{} differs from the npm package's: copy it from node_modules/swagger-ui-dist/",
                asset.name
            );
        }
    }

    #[test]
    fn a_service_document_merges_its_own_operations() {
        let mut doc = document("svc");
        let mut own = OpenApi::default();
        own.paths.add_path_operation(
            "/things/{id}",
            vec![HttpMethod::Get],
            OperationBuilder::new().build(),
        );
        doc.merge(own);
        assert!(doc.paths.paths.contains_key("/things/{id}"));
        assert!(doc.paths.paths.contains_key("/health"));
    }
}
