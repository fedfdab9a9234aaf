//! The proxy's side of an upstream's resilience settings, per request: the route's
//! overall deadline, the backoff before a retry, the connection slot an attempt holds,
//! whether a failed attempt is retried (`retry_on`, method, replayable body, attempts
//! left, deadline, budget), and what outlier detection is told.
//!
//! Retrying on a response status uses Pingora's retry loop: when the response head of an
//! attempt comes in, before anything is sent to the client, `upstream_response_filter`
//! may end the attempt with a retryable error; `error_while_proxy` keeps it retryable and
//! Pingora calls `upstream_peer` again, replaying the request body from its retry buffer.
//! The last attempt's response is relayed as the target gave it.

use std::time::{Duration, Instant};

use pingora_error::{Error, ErrorSource, ErrorType, RetryType};
use pingora_proxy::Session;

use std::sync::Arc;

use crate::upstream::retry::RetryConditions;
use crate::upstream::{ConnectionSlot, Failure, Outcome, RouteRetry, Selected, Upstream};

/// The message of the 503 answered when `max_connections` (and `max_pending_requests`)
/// leave no connection for a request.
pub const CONNECTIONS_FULL: &str = "upstream at its connection limit (max_connections)";

/// A request's attempts at its upstream.
#[derive(Debug, Default)]
pub struct Attempts {
    /// Attempts started.
    started: u32,
    /// The route's `timeout`, from the request's arrival.
    deadline: Option<Instant>,
    /// The current attempt's place under `max_connections`.
    connection: Option<ConnectionSlot>,
    /// The next attempt re-sends on the same target without counting as a retry (a
    /// reused idle connection the target had closed).
    resend: bool,
    /// The current attempt was ended on its response status, to be retried.
    status_retry: bool,
    /// The answer's message when the gateway itself ended the request here.
    message: Option<&'static str>,
    /// The route's own retry policy, replacing the pool's count, conditions and
    /// per-try timeout.
    route: Option<Arc<RouteRetry>>,
}

impl Attempts {
    /// Starts the request's count: the route's `timeout` (from `started_at`), and one
    /// deposit in the pool's retry budget.
    pub fn begin(
        &mut self,
        upstream: &Upstream,
        timeout: Option<Duration>,
        route: Option<Arc<RouteRetry>>,
        started_at: Instant,
    ) {
        self.deadline = timeout.map(|t| started_at + t);
        self.route = route;
        if self.retries(upstream) > 0 {
            upstream.retry_policy().budget.deposit();
        }
    }

    /// Retries allowed: the route's, else the pool's.
    fn retries(&self, upstream: &Upstream) -> u32 {
        self.route
            .as_ref()
            .map_or(upstream.retry_policy().retries, |r| r.retries)
    }

    /// What is retried: the route's, else the pool's.
    fn conditions<'a>(&'a self, upstream: &'a Upstream) -> &'a RetryConditions {
        self.route
            .as_ref()
            .and_then(|r| r.conditions.as_ref())
            .unwrap_or(&upstream.retry_policy().conditions)
    }

    /// Each attempt's timeout cap: the route's, else the pool's.
    fn per_try_timeout(&self, upstream: &Upstream) -> Option<Duration> {
        self.route
            .as_ref()
            .and_then(|r| r.per_try_timeout)
            .or(upstream.retry_policy().per_try_timeout)
    }

    /// The message for the error answer, if the gateway chose one here.
    pub fn take_message(&mut self) -> Option<&'static str> {
        self.message.take()
    }

    /// Ends the request's hold on a connection slot (the request is over).
    pub fn finish(&mut self) {
        self.connection = None;
    }

    fn time_left(&self) -> Option<Duration> {
        self.deadline
            .map(|d| d.saturating_duration_since(Instant::now()))
    }

    fn expired(&self) -> bool {
        self.time_left().is_some_and(|t| t.is_zero())
    }

    /// Before an attempt: the backoff (for a retry, on the runtime's timer, never past
    /// the deadline), the deadline check (504), a connection slot (503 when full).
    /// Returns the cap on the attempt's timeouts: `per_try_timeout` or what is left of
    /// the deadline, whichever is shorter.
    pub async fn before_attempt(
        &mut self,
        upstream: &Upstream,
    ) -> pingora_error::Result<Option<Duration>> {
        let policy = upstream.retry_policy();
        if std::mem::take(&mut self.resend) {
            return Ok(cap(self.per_try_timeout(upstream), self.time_left()));
        }
        if self.started > 0 {
            let mut wait = policy.backoff(self.started);
            if let Some(left) = self.time_left() {
                wait = wait.min(left);
            }
            if !wait.is_zero() {
                tokio::time::sleep(wait).await;
            }
        }
        if self.expired() {
            let mut e = Error::explain(
                ErrorType::HTTPStatus(504),
                "the route's timeout passed before the response",
            );
            e.as_up();
            return Err(e);
        }
        self.connection = None;
        match upstream
            .connections()
            .acquire_within(self.time_left())
            .await
        {
            Ok(slot) => self.connection = slot,
            Err(_) => {
                self.message = Some(CONNECTIONS_FULL);
                return Error::e_explain(ErrorType::HTTPStatus(503), CONNECTIONS_FULL);
            }
        }
        self.started += 1;
        Ok(cap(self.per_try_timeout(upstream), self.time_left()))
    }

    /// Whether one more attempt may be made after a failure of `kind`, the budget
    /// paying for it. `reached` says whether the request may have reached the target
    /// (so its method must be idempotent, or `retry_non_idempotent` set).
    fn may_retry(
        &self,
        upstream: &Upstream,
        session: &Session,
        tried: &[usize],
        kind: Failure,
        reached: bool,
    ) -> bool {
        let policy = upstream.retry_policy();
        self.started <= self.retries(upstream)
            && self.conditions(upstream).matches(kind)
            && (!reached || policy.non_idempotent || session.req_header().method.is_idempotent())
            && !session.as_ref().retry_buffer_truncated()
            && !self.expired()
            // Each retry goes to a target not tried yet (Envoy's previous_hosts
            // predicate, which Istio sets): without one, this attempt's answer stands.
            && upstream.has_available(tried)
            // Last, so that the budget pays only for retries that are made.
            && policy.budget.withdraw()
    }

    /// A connection attempt failed: tells outlier detection, moves the target to
    /// `tried`, and decides whether to retry.
    pub fn connect_failed(
        &mut self,
        upstream: &Upstream,
        session: &Session,
        selected: &mut Option<Selected>,
        tried: &mut Vec<usize>,
        mut e: Box<Error>,
    ) -> Box<Error> {
        if let Some(sel) = selected.take() {
            upstream.report(&sel, Outcome::LocalFailure);
            tried.push(sel.index);
        }
        self.connection = None;
        let retry = self.may_retry(upstream, session, tried, Failure::Connect, false);
        e.set_retry(retry);
        e
    }

    /// The response head of an attempt came in: tells outlier detection, and returns the
    /// error that makes Pingora retry when the status is to be retried (nothing has been
    /// sent to the client yet).
    pub fn response_status(
        &mut self,
        upstream: &Upstream,
        session: &Session,
        selected: &mut Option<Selected>,
        tried: &mut Vec<usize>,
        status: u16,
    ) -> pingora_error::Result<()> {
        if status < 200 {
            return Ok(());
        }
        let outcome = if status >= 500 {
            Outcome::Status5xx(status)
        } else {
            Outcome::Success
        };
        if let Some(sel) = selected.as_ref() {
            upstream.report(sel, outcome);
        }
        if !self.conditions(upstream).on_status() {
            return Ok(());
        }
        let Some(index) = selected.as_ref().map(|s| s.index) else {
            return Ok(());
        };
        tried.push(index);
        if !self.may_retry(upstream, session, tried, Failure::Status(status), true) {
            tried.pop();
            return Ok(());
        }
        *selected = None;
        self.connection = None;
        self.status_retry = true;
        let mut e = Error::explain(
            ErrorType::HTTPStatus(status),
            "retrying: the upstream answered a status retry_on lists",
        );
        e.as_up();
        e.set_retry(true);
        Err(e)
    }

    /// An attempt failed after its connection was made (or reused): decides whether to
    /// retry, in place of Pingora's default policy, which it keeps for one case: a
    /// reused idle connection that the target had closed is re-sent on the same target
    /// without counting as a retry.
    pub fn proxy_failed(
        &mut self,
        upstream: &Upstream,
        session: &Session,
        selected: &mut Option<Selected>,
        tried: &mut Vec<usize>,
        client_reused: bool,
        mut e: Box<Error>,
    ) -> Box<Error> {
        if std::mem::take(&mut self.status_retry) {
            e.set_retry(true);
            return e;
        }
        if session.response_written().is_some() {
            // The response head went to the client already (the body broke off): a
            // retry would send a second response.
            if let Some(sel) = selected.take() {
                if e.esource() == &ErrorSource::Upstream {
                    upstream.report(&sel, Outcome::LocalFailure);
                }
            }
            e.set_retry(false);
            return e;
        }
        let stale = matches!(e.retry, RetryType::ReusedOnly) && client_reused;
        if stale
            && session.req_header().method.is_idempotent()
            && !session.as_ref().retry_buffer_truncated()
        {
            self.resend = true;
            e.set_retry(true);
            return e;
        }
        if e.esource() != &ErrorSource::Upstream {
            // The client went away or a plugin refused the body: nothing to retry, and
            // nothing the target did.
            e.set_retry(false);
            return e;
        }
        if let Some(sel) = selected.take() {
            upstream.report(&sel, Outcome::LocalFailure);
            tried.push(sel.index);
        }
        self.connection = None;
        let retry = self.may_retry(upstream, session, tried, Failure::Reset, true);
        e.set_retry(retry);
        e
    }
}

/// The shorter of two optional limits.
fn cap(a: Option<Duration>, b: Option<Duration>) -> Option<Duration> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}
