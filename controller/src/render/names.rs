//! Names the render writes: object names (DNS labels, kept under the 253 characters of a
//! subdomain), stat prefixes, and the fixed names of the label and the Envoy filters we use.
//! Pure string functions of a service port; no config types.

use crate::model::ServicePort;

/// Label on everything we render (the reconcile prunes by it).
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "meltemi");
/// Prefix of the bridge twin of an Istio cluster: a request the module sends elsewhere than the
/// connection's primary cluster goes by HTTP callout to `BRIDGE_PREFIX + cluster`, whose upstream
/// is the module's HTTP-to-TCP bridge.
pub const BRIDGE_PREFIX: &str = "meltemi-bridge|";
pub const TCP_PROXY: &str = "envoy.filters.network.tcp_proxy";
pub const DYNAMIC_MODULE_FILTER: &str = "envoy.filters.network.dynamic_modules";
pub const WASM_FILTER: &str = "envoy.filters.network.wasm";

/// `[a-z0-9-]` only, no leading/trailing `-`: a DNS label piece.
pub fn dns_piece(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_matches('-').to_string()
}

/// `[A-Za-z0-9_]` for stat names.
pub(super) fn stat_piece(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

pub fn stat_prefix(direction: &str, sp: &ServicePort) -> String {
    format!("{direction}_{}_{}", sp.port, stat_piece(&sp.host))
}

/// Keeps names within the 253 characters of a DNS subdomain (a hash keeps them distinct).
pub(super) fn object_name(base: String) -> String {
    if base.len() <= 253 {
        return base;
    }
    let h = fnv1a(base.as_bytes());
    format!("{}-{h:016x}", base[..236].trim_end_matches('-'))
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}
