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
//! The page is Scalar's (`utoipa-scalar`): its HTML is compiled into the
//! binary (nothing is downloaded at build time, unlike `utoipa-swagger-ui`)
//! and it renders OpenAPI 3.1, which this document is. The browser loads
//! Scalar's script from its CDN when the page is opened; the JSON document
//! itself never needs the network.

use std::sync::Arc;

use axum::Router;
use axum::http::header;
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use utoipa::ToSchema;
use utoipa::openapi::path::{HttpMethod, OperationBuilder};
use utoipa::openapi::{ContentBuilder, InfoBuilder, OpenApi, Ref, Response, ResponseBuilder};
use utoipa_scalar::Scalar;

use crate::health::{HealthBody, LivezBody};
pub use crate::schemas::{Detail, HnvAmount, OPERATIONS_TAG};

/// Where the JSON document is served.
pub const OPENAPI_PATH: &str = "/openapi.json";
/// Where the browsable page is served.
pub const DOCS_PATH: &str = "/docs";
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

/// `GET /openapi.json` (the document, with these two routes added to it)
/// and `GET /docs` (the browsable page). The document is serialized once,
/// here, not per request. Merge the result into the service's router.
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
    let html = Scalar::new(doc.clone())
        .title(doc.info.title.clone())
        .to_html();
    Router::new()
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
                let html = html.clone();
                async move { Html(html).into_response() }
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
