//! What a driver does where distribution's drivers differ, as it declares it (contract 0.2's
//! `capabilities`). The conformance suite runs or skips its tests by these, never by names.

/// A driver's declared capabilities. `None` in a field means the driver did not say (a
/// component built for contract 0.1.0): the suite then accepts either behaviour.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Capabilities {
    /// The driver walks natively; otherwise the base layer walks with `list` and `stat`.
    /// Undeclared counts as "try": an `unsupported` answer falls back.
    pub native_walk: Option<bool>,
    /// The methods `redirect_url` answers with a URL (upper case); empty when it never does.
    pub redirect_methods: Option<Vec<String>>,
    /// Whether `writer(path, true)` appends to committed, non-empty content (true) or refuses
    /// with an error naming the path (false) (D4).
    pub appends_to_committed: Option<bool>,
    /// The largest object the driver can store, where it has a limit.
    pub max_object_size: Option<u64>,
}

impl Capabilities {
    /// Whether `redirect_url(method, ..)` is declared to give a URL; `None` if undeclared.
    pub fn redirects(&self, method: &str) -> Option<bool> {
        self.redirect_methods.as_ref().map(|methods| methods.iter().any(|m| m.eq_ignore_ascii_case(method)))
    }
}
