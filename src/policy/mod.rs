//! Policies, one file each. Users configure them (service-wide under `policies:`, overridden per
//! endpoint under `endpoints[].policies:`, one whole policy at a time); they do not order them.
//! The order is fixed here, in code: IP filter, CORS preflight, Origin check, body-size check,
//! authentication, MCP inspection, CEL policies, rate and concurrency limits, header modifiers.

pub mod auth;
pub mod origin;

use crate::config::Problem;
use crate::proxy::errors::GatewayError;
use pingora::http::RequestHeader;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The policy settings, service-wide or of one endpoint.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PoliciesConfig {
    /// Host and Origin validation against DNS rebinding.
    #[serde(default)]
    pub origin: Option<OriginConfig>,
}

pub use origin::OriginConfig;

impl PoliciesConfig {
    /// The endpoint's settings over the service-wide ones: a policy set on the endpoint replaces
    /// the service-wide one as a whole.
    pub fn over(&self, defaults: &PoliciesConfig) -> PoliciesConfig {
        PoliciesConfig {
            origin: self.origin.clone().or_else(|| defaults.origin.clone()),
        }
    }
}

/// Facts about the whole service that policies need when compiled.
pub struct ServiceFacts {
    /// Every listener binds a loopback address.
    pub loopback_listeners: bool,
}

/// The compiled policies of one endpoint.
#[derive(Debug, Clone)]
pub struct Policies {
    origin: origin::OriginCheck,
}

impl Policies {
    /// Compiles merged settings; `at` is the config path they came from (for errors).
    pub fn compile(
        cfg: &PoliciesConfig,
        facts: &ServiceFacts,
        at: &str,
    ) -> Result<Self, Vec<Problem>> {
        let origin = origin::OriginCheck::compile(
            &cfg.origin.clone().unwrap_or_default(),
            facts.loopback_listeners,
            &format!("{at}.origin"),
        )?;
        Ok(Policies { origin })
    }

    /// Runs the request-header policies in their fixed order.
    pub fn check_request(&self, req: &RequestHeader) -> Result<(), GatewayError> {
        self.origin.check(req)?;
        Ok(())
    }
}
