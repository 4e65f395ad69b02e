//! The HTTP API: routes (documented in OpenAPI from the same code), shared state, and the
//! protective layers every request passes (body limit, deadline, load shedding, panic guard).

pub mod api_keys;
pub mod audit;
pub mod auth;
pub mod bans;
pub mod billing;
pub mod connectors;
pub mod deadline;
pub mod error;
pub mod extract;
pub mod factors;
pub mod inbound;
pub mod messages;
pub mod openapi;
pub mod opt_outs;
pub mod oversized;
pub mod passkeys;
pub mod people;
pub mod policy;
pub mod pumping;
pub mod rate_limits;
pub mod retention;
pub mod system;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::error_handling::HandleErrorLayer;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::PrometheusHandle;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::set_header::SetResponseHeaderLayer;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use self::error::ApiError;
use self::openapi::SecurityAddon;
use crate::app::App;
use crate::delivery::Delivery;

/// Everything a handler can reach.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

pub struct Shared {
    pub app: Arc<App>,
    pub delivery: Arc<Delivery>,
    pub metrics: PrometheusHandle,
    /// The OpenAPI document; `None` if it could not be rendered (logged and counted at start).
    pub openapi_json: Option<Bytes>,
    ready: AtomicBool,
}

impl std::ops::Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

impl AppState {
    pub fn new(app: Arc<App>, delivery: Arc<Delivery>, metrics: PrometheusHandle) -> Self {
        let openapi_json = match api_router().into_openapi().to_json() {
            Ok(json) => Some(Bytes::from(json)),
            Err(e) => {
                tracing::error!(error = %e, "cannot render the OpenAPI document");
                metrics::counter!("rampart_openapi_errors_total").increment(1);
                None
            }
        };
        Self(Arc::new(Shared {
            app,
            delivery,
            metrics,
            openapi_json,
            ready: AtomicBool::new(true),
        }))
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Relaxed);
    }

    /// Gauges computed on scrape.
    pub fn record_gauges(&self) {
        for connector in self.delivery.router().connectors() {
            let status = connector.status();
            let name = status.name.clone();
            metrics::gauge!("rampart_connector_up", "connector" => name.clone())
                .set(if status.up { 1.0 } else { 0.0 });
            metrics::gauge!("rampart_connector_in_flight", "connector" => name.clone())
                .set(status.in_flight as f64);
            metrics::gauge!("rampart_connector_submitted", "connector" => name.clone())
                .set(status.submitted as f64);
            metrics::gauge!("rampart_connector_errors", "connector" => name.clone())
                .set(status.errors as f64);
            metrics::gauge!("rampart_connector_inbound_dropped", "connector" => name)
                .set(status.inbound_dropped as f64);
        }
    }
}

#[derive(utoipa::OpenApi)]
#[openapi(
    info(title = "Rampart SMS API", description = "Send and track SMS with security built into every layer."),
    components(
        schemas(error::Problem),
        responses(
            openapi::BadRequest, openapi::Unauthorized, openapi::Forbidden, openapi::NotFound,
            openapi::Conflict, openapi::PaymentRequired, openapi::PayloadTooLarge, openapi::UnsupportedMediaType,
            openapi::Unprocessable, openapi::TooManyRequests, openapi::RequestTimeout,
            openapi::InternalError,
            openapi::Unavailable
        )
    ),
    modifiers(&SecurityAddon)
)]
struct ApiDoc;

/// Every route, with its OpenAPI description: the router and the document come from one list.
pub fn api_router() -> OpenApiRouter<AppState> {
    use utoipa::{Modify, OpenApi};
    let mut router = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(messages::send_message, messages::list_messages))
        .routes(routes!(messages::get_message))
        .routes(routes!(messages::cancel_message))
        .routes(routes!(api_keys::create_api_key, api_keys::list_api_keys))
        .routes(routes!(api_keys::get_api_key, api_keys::revoke_api_key))
        .routes(routes!(inbound::list_inbound))
        .routes(routes!(inbound::get_inbound))
        .routes(routes!(inbound::list_numbers))
        .routes(routes!(audit::list_audit_events))
        .routes(routes!(connectors::list_connectors))
        .routes(routes!(auth::login))
        .routes(routes!(auth::logout))
        .routes(routes!(auth::current_session))
        .routes(routes!(auth::reauthenticate))
        .routes(routes!(auth::change_password))
        .routes(routes!(auth::me))
        .routes(routes!(auth::list_sessions))
        .routes(routes!(auth::revoke_session))
        .routes(routes!(auth::list_roles))
        .routes(routes!(passkeys::start_registration))
        .routes(routes!(passkeys::finish_registration))
        .routes(routes!(passkeys::list_passkeys))
        .routes(routes!(passkeys::remove_passkey))
        .routes(routes!(passkeys::start_sign_in))
        .routes(routes!(passkeys::finish_sign_in))
        .routes(routes!(factors::start_totp))
        .routes(routes!(factors::confirm_totp))
        .routes(routes!(factors::list_factors))
        .routes(routes!(factors::remove_factor))
        .routes(routes!(factors::regenerate_recovery_codes))
        .routes(routes!(factors::start_phone, factors::remove_phone))
        .routes(routes!(factors::verify_phone))
        .routes(routes!(factors::login_totp))
        .routes(routes!(factors::login_sms_send))
        .routes(routes!(factors::login_sms))
        .routes(routes!(factors::login_recovery))
        .routes(routes!(factors::get_security, factors::set_security))
        .routes(routes!(people::setup))
        .routes(routes!(people::request_reset))
        .routes(routes!(people::complete_reset))
        .routes(routes!(people::accept_invitation))
        .routes(routes!(people::list_users, people::create_user))
        .routes(routes!(people::disable_user))
        .routes(routes!(people::enable_user))
        .routes(routes!(people::list_members, people::invite_member))
        .routes(routes!(people::change_role, people::remove_member))
        .routes(routes!(people::get_allowed_ips, people::set_allowed_ips))
        .routes(routes!(people::set_operator_allowed_ips))
        .routes(routes!(
            rate_limits::get_rate_limits,
            rate_limits::set_rate_limits
        ))
        .routes(routes!(rate_limits::set_operator_rate_limits))
        .routes(routes!(retention::get_retention, retention::set_retention))
        .routes(routes!(billing::get_balance))
        .routes(routes!(billing::get_ledger))
        .routes(routes!(billing::add_credit))
        .routes(routes!(billing::refund_message))
        .routes(routes!(policy::get_policy, policy::set_policy))
        .routes(routes!(policy::dry_run))
        .routes(routes!(opt_outs::list_opt_outs, opt_outs::add_opt_out))
        .routes(routes!(opt_outs::remove_opt_out))
        .routes(routes!(opt_outs::import_opt_outs))
        .routes(routes!(opt_outs::export_opt_outs))
        .routes(routes!(
            opt_outs::get_opt_out_settings,
            opt_outs::set_opt_out_settings
        ))
        .routes(routes!(pumping::list_blocks))
        .routes(routes!(pumping::lift_block))
        .routes(routes!(bans::list_bans))
        .routes(routes!(bans::lift_ban))
        .routes(routes!(system::healthz))
        .routes(routes!(system::readyz))
        .routes(routes!(system::metrics))
        .routes(routes!(system::openapi));
    openapi::LayerAnswers.modify(router.get_openapi_mut());
    router
}

/// The complete application with its protective layers. The in-flight cap, load shedding and
/// the refusal of oversized bodies wrap the whole router once (`Router::layer` would give each
/// route its own cap); the response headers are set on every answer, those layers' included.
pub fn app(state: AppState) -> Router {
    let config = state.app.config().clone();
    let limits = &config.limits;
    let (router, _) = api_router().split_for_parts();
    let routes = router
        .fallback(|| async { ApiError::not_found("route") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this route does not take that method",
            )
        })
        .layer(DefaultBodyLimit::max(limits.max_body_bytes))
        .layer(middleware::from_fn(observe))
        .layer(deadline::DeadlineLayer::new(Duration::from_millis(
            limits.request_timeout_ms,
        )))
        .with_state(state);
    let guarded = ServiceBuilder::new()
        .layer(SetResponseHeaderLayer::overriding(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ))
        .layer(CatchPanicLayer::custom(|_| {
            ApiError::internal().into_response()
        }))
        .layer(oversized::RefuseOversizedLayer::new(limits.max_body_bytes))
        .layer(HandleErrorLayer::new(overload_response))
        .load_shed()
        .concurrency_limit(limits.max_in_flight_requests)
        .service(routes);
    Router::new().fallback_service(guarded)
}

async fn overload_response(err: tower::BoxError) -> ApiError {
    if err.is::<tower::load_shed::error::Overloaded>() {
        metrics::counter!("rampart_http_shed_total").increment(1);
        return ApiError::unavailable("the server is at capacity; retry shortly");
    }
    ApiError::internal()
}

/// Counts requests by route and status. Only the route template is recorded, never the path
/// or query (which may hold phone numbers).
async fn observe(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |p| p.as_str())
        .to_owned();
    let method = method_label(request.method());
    let started = Instant::now();
    let response = next.run(request).await;
    let status = status_label(response.status());
    metrics::histogram!("rampart_http_request_seconds", "route" => route.clone())
        .record(started.elapsed().as_secs_f64());
    metrics::counter!("rampart_http_requests_total", "route" => route, "method" => method, "status" => status).increment(1);
    response
}

/// The method as a metrics label, from a fixed set: a client cannot add label values.
fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// The status as a metrics label: the codes the API answers with, others by class.
fn status_label(status: StatusCode) -> &'static str {
    match status.as_u16() {
        200 => "200",
        201 => "201",
        202 => "202",
        204 => "204",
        400 => "400",
        401 => "401",
        403 => "403",
        404 => "404",
        405 => "405",
        408 => "408",
        409 => "409",
        413 => "413",
        415 => "415",
        422 => "422",
        429 => "429",
        431 => "431",
        500 => "500",
        503 => "503",
        code => match code / 100 {
            1 => "1xx",
            2 => "2xx",
            3 => "3xx",
            4 => "4xx",
            _ => "5xx",
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_labels_come_from_fixed_sets() {
        let odd = axum::http::Method::from_bytes(b"X-PHONE-447911123456").unwrap();
        assert_eq!(method_label(&odd), "other");
        assert_eq!(method_label(&axum::http::Method::POST), "POST");
        assert_eq!(status_label(StatusCode::ACCEPTED), "202");
        assert_eq!(status_label(StatusCode::IM_A_TEAPOT), "4xx");
        assert_eq!(status_label(StatusCode::from_u16(599).unwrap()), "5xx");
    }
}
