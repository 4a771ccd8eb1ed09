//! The worker's held-bytes budget: one per Envoy worker thread (every hook of a connection,
//! callout completions included, runs on that connection's worker), shared by every
//! connection and listener of the module on it. Sessions report to it after each hook
//! ([`meltemi_engine::Session::settle_held`]); see `workerHeldBudgetBytes`.

use meltemi_engine::HeldBudget;
use std::cell::RefCell;

thread_local! {
    static BUDGET: RefCell<HeldBudget> = RefCell::new(HeldBudget::default());
}

/// Runs `f` with this worker's budget (a re-entered call, which no hook makes today, gets an
/// empty budget of its own rather than a panic).
pub(crate) fn with<R>(f: impl FnOnce(&mut HeldBudget) -> R) -> R {
    BUDGET.with(|b| match b.try_borrow_mut() {
        Ok(mut g) => f(&mut g),
        Err(_) => f(&mut HeldBudget::default()),
    })
}
