//! The model price table (`[gateway.prices."<exact model id>"]`) and the cost of a call.
//! A streamed and a buffered call with the same usage cost the same: both come here with
//! the usage the upstream reported.

use crate::usage::Usage;
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};

/// US dollars per million tokens.
#[derive(Clone, Copy, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Price {
    pub input_per_mtok: f64,
    pub output_per_mtok: f64,
    /// Cached input tokens; the input price when absent.
    pub cached_input_per_mtok: Option<f64>,
}

impl Price {
    pub fn problem(&self) -> Option<&'static str> {
        let ok = |v: f64| v.is_finite() && v >= 0.0;
        let all = [
            self.input_per_mtok,
            self.output_per_mtok,
            self.cached_input_per_mtok.unwrap_or(0.0),
        ];
        (!all.into_iter().all(ok)).then_some("prices must be finite and not negative")
    }

    /// Cached tokens are part of the input count (OpenAI's convention), priced apart;
    /// reasoning tokens are part of the output count, priced as output.
    pub fn cost(&self, u: &Usage) -> f64 {
        let cached = u.cached.min(u.input);
        let fresh = u.input - cached;
        let cached_price = self.cached_input_per_mtok.unwrap_or(self.input_per_mtok);
        (fresh as f64 * self.input_per_mtok
            + cached as f64 * cached_price
            + u.output as f64 * self.output_per_mtok)
            / 1_000_000.0
    }
}

#[derive(Clone, Debug, Default)]
pub struct Prices(HashMap<String, Price, foldhash::fast::RandomState>);

impl Prices {
    pub fn new(table: BTreeMap<String, Price>) -> Self {
        Self(table.into_iter().collect())
    }

    /// The cost at the first of `models` (exact ids) the table prices; `None` when none is.
    pub fn cost<'a>(&self, models: impl IntoIterator<Item = &'a str>, u: &Usage) -> Option<f64> {
        models
            .into_iter()
            .find_map(|m| self.0.get(m))
            .map(|p| p.cost(u))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn mini() -> Price {
        Price {
            input_per_mtok: 0.15,
            output_per_mtok: 0.60,
            cached_input_per_mtok: Some(0.075),
        }
    }

    #[test]
    fn cached_tokens_are_priced_apart_and_exact_ids_only() {
        let u = Usage {
            input: 1_000_000,
            output: 500_000,
            cached: 400_000,
            ..Usage::default()
        };
        let c = mini().cost(&u);
        assert!(
            (c - (0.6 * 0.15 + 0.4 * 0.075 + 0.5 * 0.60)).abs() < 1e-12,
            "{c}"
        );
        let prices = Prices::new([("gpt-4o-mini".to_owned(), mini())].into());
        assert_eq!(prices.cost(["gpt-4o-mini-2024-07-18"], &u), None);
        assert_eq!(prices.cost(["nope", "gpt-4o-mini"], &u), Some(c));
        let bad = Price {
            input_per_mtok: f64::NAN,
            ..mini()
        };
        assert!(bad.problem().is_some());
        assert!(mini().problem().is_none());
    }

    proptest! {
        #[test]
        fn cost_is_never_negative_and_grows_with_output(
            input in 0u64..10_000_000, cached in 0u64..10_000_000, output in 0u64..10_000_000
        ) {
            let u = Usage { input, cached, output, ..Usage::default() };
            let c = mini().cost(&u);
            prop_assert!(c >= 0.0);
            let more = Usage { output: output + 1, ..u };
            prop_assert!(mini().cost(&more) > c);
        }
    }
}
