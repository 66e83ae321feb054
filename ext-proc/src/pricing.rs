//! Model prices and the exact cost of one request.
//!
//! # Units
//! Prices are written as decimal strings in USD per 1M tokens (`"0.075"`), never floats.
//! With at most three decimals that is an exact integer of nano-USD per token
//! (`"0.075"` → 75, `"2.50"` → 2500), so a cost is `Σ tokens × price` in integer nano-USD,
//! with nothing rounded. [`Cost::microusd_rounded`] rounds half-up for display only.
//!
//! # The catalog
//! [`Catalog::builtin`] reads `ext-proc/pricing/catalog.json` (compiled in; see its `about`
//! for the conventions). Each entry names its models, its prices, where they came from and
//! when; optional `tiers` replace all its prices above a prompt size (Anthropic Haiku 5.5
//! above 100k, OpenAI above 272K, Gemini 3.1 Pro above 200k), and `effective_from` dates a
//! price change (Gemini 3.8 Flash from 2027-01-01). [`PriceOverride`]s from configuration
//! replace the catalog for a model.
//!
//! # Model names
//! A model is looked up by exact name first, then by the documented variants below, never
//! by loose prefix (`claude-opus-5` must not price `claude-opus-5-5`):
//! - OpenAI and OpenAI-compatible: a `-YYYY-MM-DD` snapshot suffix is dropped
//!   (`gpt-6-luna-2026-08-01` → `gpt-6-luna`).
//! - Anthropic: a `-YYYYMMDD` (or Vertex-style `@YYYYMMDD`) suffix is dropped
//!   (`claude-opus-5-20261001` → `claude-opus-5`).
//! - Google: a `models/` prefix and a `-NNN` stable-version suffix are dropped
//!   (`models/gemini-3.5-flash-001` → `gemini-3.5-flash`).
//! - Bedrock: an ARN gives its last path part, then an inference-profile prefix (`us.`,
//!   `eu.`, `apac.`, `global.`, …) and a `-vN:M` version suffix are dropped
//!   (`arn:…:inference-profile/us.anthropic.claude-opus-5-20261001-v1:0` →
//!   `anthropic.claude-opus-5-20261001` → `anthropic.claude-opus-5`). The catalog has no
//!   Bedrock prices (they depend on model and region, providers.md §8), so Bedrock is
//!   unpriced unless an override names the model, or
//!   [`Catalog::set_bedrock_uses_anthropic_prices`] is on: then `anthropic.claude-…` ids
//!   take the Anthropic entry of the same model. That is opt-in because Bedrock's own
//!   prices can differ (regional endpoints, for one).
//!
//! Anything not found is [`Cost::Unpriced`] with the reason, never a cost of zero; so is a
//! request with tokens in a bucket the model has no price for (say, cache reads on a model
//! whose cache price was not checked).

use crate::usage::Usage;
use aigw_core::ProviderKind;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fmt;

/// The built-in catalog's source.
pub const BUILTIN_CATALOG_JSON: &str = include_str!("../pricing/catalog.json");

/// A price above this (USD per 1M tokens) is refused: none is near it, and the cap keeps
/// every product of a `u64` token count and a price far inside `u128`.
pub const MAX_USD_PER_MILLION: u64 = 1_000_000;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PriceError {
    #[error("price `{0}` is not a decimal number of USD per 1M tokens (like \"2.50\")")]
    NotDecimal(String),
    #[error("price `{0}` has more than 3 decimals; the smallest step is 0.001 USD per 1M tokens (1 nano-USD per token)")]
    TooPrecise(String),
    #[error("price `{0}` is above the {MAX_USD_PER_MILLION} USD per 1M tokens limit")]
    TooLarge(String),
}

/// A price in nano-USD per token, which is milli-USD per 1M tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Price(u64);

impl Price {
    /// From a decimal string of USD per 1M tokens: `"0.075"` is 75 nano-USD per token.
    pub fn parse(text: &str) -> Result<Price, PriceError> {
        let bad = || PriceError::NotDecimal(text.to_string());
        let (whole, fraction) = match text.split_once('.') {
            Some((w, f)) if !f.is_empty() => (w, f),
            Some(_) => return Err(bad()),
            None => (text, ""),
        };
        if whole.is_empty()
            || !whole
                .bytes()
                .chain(fraction.bytes())
                .all(|b| b.is_ascii_digit())
        {
            return Err(bad());
        }
        // Trailing zeros past the third decimal are harmless ("0.0750").
        let fraction = fraction.trim_end_matches('0');
        if fraction.len() > 3 {
            return Err(PriceError::TooPrecise(text.to_string()));
        }
        let whole: u64 = whole
            .parse()
            .ok()
            .filter(|w| *w <= MAX_USD_PER_MILLION)
            .ok_or_else(|| PriceError::TooLarge(text.to_string()))?;
        let milli: u64 = format!("{fraction:0<3}").parse().map_err(|_| bad())?;
        let price = whole * 1000 + milli;
        if price > MAX_USD_PER_MILLION * 1000 {
            return Err(PriceError::TooLarge(text.to_string()));
        }
        Ok(Price(price))
    }

    pub const fn from_nanousd_per_token(n: u64) -> Price {
        Price(n)
    }

    pub const fn nanousd_per_token(self) -> u64 {
        self.0
    }
}

/// USD per 1M tokens, shortest exact form: `75` → `0.075`, `2500` → `2.5`.
impl fmt::Display for Price {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (whole, milli) = (self.0 / 1000, self.0 % 1000);
        if milli == 0 {
            write!(f, "{whole}")
        } else {
            let fraction = format!("{milli:03}");
            write!(f, "{whole}.{}", fraction.trim_end_matches('0'))
        }
    }
}

impl Serialize for Price {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Price {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Price::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// The billable buckets of [`Usage`], each with its own price.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Bucket {
    Input,
    CacheRead,
    CacheWrite5m,
    CacheWrite1h,
    CacheWrite30m,
    CacheWrite12h,
    Output,
}

impl Bucket {
    pub const ALL: [Bucket; 7] = [
        Bucket::Input,
        Bucket::CacheRead,
        Bucket::CacheWrite5m,
        Bucket::CacheWrite1h,
        Bucket::CacheWrite30m,
        Bucket::CacheWrite12h,
        Bucket::Output,
    ];

    /// The name used in the catalog and in [`PriceOverride`].
    pub const fn name(self) -> &'static str {
        match self {
            Bucket::Input => "input",
            Bucket::CacheRead => "cache_read",
            Bucket::CacheWrite5m => "cache_write_5m",
            Bucket::CacheWrite1h => "cache_write_1h",
            Bucket::CacheWrite30m => "cache_write_30m",
            Bucket::CacheWrite12h => "cache_write_12h",
            Bucket::Output => "output",
        }
    }

    pub fn tokens(self, u: &Usage) -> u64 {
        match self {
            Bucket::Input => u.input,
            Bucket::CacheRead => u.cache_read,
            Bucket::CacheWrite5m => u.cache_write_5m,
            Bucket::CacheWrite1h => u.cache_write_1h,
            Bucket::CacheWrite30m => u.cache_write_30m,
            Bucket::CacheWrite12h => u.cache_write_12h,
            Bucket::Output => u.output,
        }
    }
}

/// One price per bucket; `None` where the model has none (tokens there are unpriced).
/// The same fields, flat, are read from the catalog, its tiers and [`PriceOverride`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Prices {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<Price>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_read: Option<Price>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_write_5m: Option<Price>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_write_1h: Option<Price>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_write_30m: Option<Price>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_write_12h: Option<Price>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<Price>,
}

impl Prices {
    pub fn get(&self, bucket: Bucket) -> Option<Price> {
        match bucket {
            Bucket::Input => self.input,
            Bucket::CacheRead => self.cache_read,
            Bucket::CacheWrite5m => self.cache_write_5m,
            Bucket::CacheWrite1h => self.cache_write_1h,
            Bucket::CacheWrite30m => self.cache_write_30m,
            Bucket::CacheWrite12h => self.cache_write_12h,
            Bucket::Output => self.output,
        }
    }

    fn is_empty(&self) -> bool {
        Bucket::ALL.iter().all(|b| self.get(*b).is_none())
    }
}

/// Prices that replace an entry's when the prompt is larger than `above_prompt_tokens`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Tier {
    pub above_prompt_tokens: u64,
    pub prices: Prices,
}

/// One catalog row: models that share prices.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CatalogEntry {
    pub models: Vec<String>,
    pub prices: Prices,
    /// Ascending by threshold.
    pub tiers: Vec<Tier>,
    /// The first day these prices apply; without it, they always did.
    pub effective_from: Option<Day>,
    /// When the price was read from `source`.
    pub taken: Day,
    pub source: String,
    pub note: Option<String>,
}

impl CatalogEntry {
    /// The prices for a request with this many prompt tokens, and the tier used.
    fn prices_for(&self, prompt_tokens: u64) -> (&Prices, Option<u64>) {
        match self
            .tiers
            .iter()
            .rev()
            .find(|t| prompt_tokens > t.above_prompt_tokens)
        {
            Some(t) => (&t.prices, Some(t.above_prompt_tokens)),
            None => (&self.prices, None),
        }
    }
}

/// A configured price for one model of one provider, replacing the catalog's entirely
/// (no tiers; a bucket it leaves out is unpriced). JSON:
/// `{"model": "gpt-6-luna", "input": "0.08", "output": "0.40", "cache_read": "0.008"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PriceOverride {
    pub model: String,
    pub prices: Prices,
}

/// The flat JSON shape shared by catalog entries, tiers and overrides. (serde's `flatten`
/// cannot be combined with `deny_unknown_fields`, so the fields are listed once here.)
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FlatPrices {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    models: Option<Vec<String>>,
    #[serde(default)]
    above_prompt_tokens: Option<u64>,
    #[serde(default)]
    tiers: Vec<FlatPrices>,
    #[serde(default)]
    effective_from: Option<Day>,
    #[serde(default)]
    taken: Option<Day>,
    #[serde(default)]
    source: Option<String>,
    #[serde(default)]
    note: Option<String>,
    #[serde(default)]
    input: Option<Price>,
    #[serde(default)]
    cache_read: Option<Price>,
    #[serde(default)]
    cache_write_5m: Option<Price>,
    #[serde(default)]
    cache_write_1h: Option<Price>,
    #[serde(default)]
    cache_write_30m: Option<Price>,
    #[serde(default)]
    cache_write_12h: Option<Price>,
    #[serde(default)]
    output: Option<Price>,
}

impl FlatPrices {
    fn prices(&self) -> Prices {
        Prices {
            input: self.input,
            cache_read: self.cache_read,
            cache_write_5m: self.cache_write_5m,
            cache_write_1h: self.cache_write_1h,
            cache_write_30m: self.cache_write_30m,
            cache_write_12h: self.cache_write_12h,
            output: self.output,
        }
    }

    /// Names the first field, of `allowed` or not, that this shape must not have.
    fn unexpected(&self, allowed: &[&str]) -> Option<&'static str> {
        let present = [
            ("model", self.model.is_some()),
            ("models", self.models.is_some()),
            ("above_prompt_tokens", self.above_prompt_tokens.is_some()),
            ("tiers", !self.tiers.is_empty()),
            ("effective_from", self.effective_from.is_some()),
            ("taken", self.taken.is_some()),
            ("source", self.source.is_some()),
            ("note", self.note.is_some()),
        ];
        present
            .into_iter()
            .find(|(name, there)| *there && !allowed.contains(name))
            .map(|(name, _)| name)
    }
}

fn shape_error<E: serde::de::Error>(what: &str, field: &str) -> E {
    E::custom(format!("unknown field `{field}` in {what}"))
}

impl<'de> Deserialize<'de> for CatalogEntry {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let f = FlatPrices::deserialize(d)?;
        let allowed = [
            "models",
            "tiers",
            "effective_from",
            "taken",
            "source",
            "note",
        ];
        if let Some(field) = f.unexpected(&allowed) {
            return Err(shape_error("a catalog entry", field));
        }
        let mut tiers = Vec::with_capacity(f.tiers.len());
        for t in &f.tiers {
            if let Some(field) = t.unexpected(&["above_prompt_tokens", "note"]) {
                return Err(shape_error("a tier", field));
            }
            tiers.push(Tier {
                above_prompt_tokens: t
                    .above_prompt_tokens
                    .ok_or_else(|| D::Error::missing_field("above_prompt_tokens"))?,
                prices: t.prices(),
            });
        }
        Ok(CatalogEntry {
            prices: f.prices(),
            models: f.models.ok_or_else(|| D::Error::missing_field("models"))?,
            tiers,
            effective_from: f.effective_from,
            taken: f.taken.ok_or_else(|| D::Error::missing_field("taken"))?,
            source: f.source.ok_or_else(|| D::Error::missing_field("source"))?,
            note: f.note,
        })
    }
}

impl<'de> Deserialize<'de> for PriceOverride {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let f = FlatPrices::deserialize(d)?;
        if let Some(field) = f.unexpected(&["model"]) {
            return Err(shape_error("a price override", field));
        }
        Ok(PriceOverride {
            prices: f.prices(),
            model: f.model.ok_or_else(|| D::Error::missing_field("model"))?,
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("price catalog is invalid: {0}")]
    Json(#[from] serde_json::Error),
    #[error("price catalog: {kind} model `{model}` is listed twice for the same date")]
    Duplicate { kind: &'static str, model: String },
    #[error("price catalog: an entry of {kind} has no model names")]
    NoModels { kind: &'static str },
    #[error("price catalog: {kind} `{model}` has no price at all")]
    NoPrices { kind: &'static str, model: String },
    #[error("price catalog: the tiers of {kind} `{model}` are not in ascending order")]
    TiersOutOfOrder { kind: &'static str, model: String },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogFile {
    #[serde(default)]
    #[allow(dead_code)]
    about: Option<String>,
    providers: HashMap<ProviderKind, Vec<CatalogEntry>>,
}

/// Prices by provider kind and model, plus configured overrides.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    entries: HashMap<ProviderKind, Vec<CatalogEntry>>,
    overrides: HashMap<ProviderKind, HashMap<String, Prices>>,
    bedrock_uses_anthropic_prices: bool,
}

/// The cost of one request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Cost {
    Priced {
        /// Exact, in nano-USD.
        nanousd: u128,
        breakdown: Breakdown,
        priced_as: PricedAs,
    },
    Unpriced {
        reason: Unpriced,
    },
}

impl Cost {
    pub fn nanousd(&self) -> Option<u128> {
        match self {
            Cost::Priced { nanousd, .. } => Some(*nanousd),
            Cost::Unpriced { .. } => None,
        }
    }

    /// Micro-USD rounded half-up: for display, never for sums.
    pub fn microusd_rounded(&self) -> Option<u128> {
        self.nanousd().map(nanousd_to_microusd_rounded)
    }
}

/// Nano-USD to micro-USD, rounding half-up.
pub fn nanousd_to_microusd_rounded(nanousd: u128) -> u128 {
    nanousd / 1000 + u128::from(nanousd % 1000 >= 500)
}

/// The cost of each bucket, in nano-USD.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Breakdown {
    pub input: u128,
    pub cache_read: u128,
    pub cache_write_5m: u128,
    pub cache_write_1h: u128,
    pub cache_write_30m: u128,
    pub cache_write_12h: u128,
    pub output: u128,
}

impl Breakdown {
    pub fn get(&self, bucket: Bucket) -> u128 {
        match bucket {
            Bucket::Input => self.input,
            Bucket::CacheRead => self.cache_read,
            Bucket::CacheWrite5m => self.cache_write_5m,
            Bucket::CacheWrite1h => self.cache_write_1h,
            Bucket::CacheWrite30m => self.cache_write_30m,
            Bucket::CacheWrite12h => self.cache_write_12h,
            Bucket::Output => self.output,
        }
    }

    fn slot(&mut self, bucket: Bucket) -> &mut u128 {
        match bucket {
            Bucket::Input => &mut self.input,
            Bucket::CacheRead => &mut self.cache_read,
            Bucket::CacheWrite5m => &mut self.cache_write_5m,
            Bucket::CacheWrite1h => &mut self.cache_write_1h,
            Bucket::CacheWrite30m => &mut self.cache_write_30m,
            Bucket::CacheWrite12h => &mut self.cache_write_12h,
            Bucket::Output => &mut self.output,
        }
    }
}

/// Which price was used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PricedAs {
    pub kind: ProviderKind,
    /// The catalog or override name that matched.
    pub model: String,
    pub overridden: bool,
    /// The tier threshold applied, if the prompt was above one.
    pub tier_above_prompt_tokens: Option<u64>,
}

/// Why a request has no cost.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(tag = "why", rename_all = "snake_case")]
pub enum Unpriced {
    #[error("no model name to price")]
    NoModel,
    #[error("{} model `{model}` has no price in the catalog or the overrides", kind.as_str())]
    UnknownModel { kind: ProviderKind, model: String },
    #[error("{} model `{model}` has no {} price for {tokens} tokens", kind.as_str(), bucket.name())]
    MissingPrice {
        kind: ProviderKind,
        model: String,
        bucket: Bucket,
        tokens: u64,
    },
}

impl Catalog {
    /// The catalog compiled in from `ext-proc/pricing/catalog.json`.
    pub fn builtin() -> Catalog {
        Catalog::from_json(BUILTIN_CATALOG_JSON)
            .expect("the built-in catalog is valid (checked by its tests)")
    }

    /// A catalog in the same format as `catalog.json`, checked.
    pub fn from_json(json: &str) -> Result<Catalog, CatalogError> {
        let file: CatalogFile = serde_json::from_str(json)?;
        for (kind, entries) in &file.providers {
            let kind = kind.as_str();
            let mut seen = std::collections::HashSet::new();
            for e in entries {
                let first = e.models.first().ok_or(CatalogError::NoModels { kind })?;
                if e.prices.is_empty() {
                    return Err(CatalogError::NoPrices {
                        kind,
                        model: first.clone(),
                    });
                }
                if !e
                    .tiers
                    .windows(2)
                    .all(|w| w[0].above_prompt_tokens < w[1].above_prompt_tokens)
                {
                    return Err(CatalogError::TiersOutOfOrder {
                        kind,
                        model: first.clone(),
                    });
                }
                for m in &e.models {
                    if !seen.insert((m.clone(), e.effective_from)) {
                        return Err(CatalogError::Duplicate {
                            kind,
                            model: m.clone(),
                        });
                    }
                }
            }
        }
        Ok(Catalog {
            entries: file.providers,
            ..Catalog::default()
        })
    }

    /// The catalog's entries for one provider kind.
    pub fn entries(&self, kind: ProviderKind) -> &[CatalogEntry] {
        self.entries.get(&kind).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Adds (or replaces) a configured price; it wins over the catalog.
    pub fn set_override(
        &mut self,
        kind: ProviderKind,
        o: PriceOverride,
    ) -> Result<(), CatalogError> {
        if o.prices.is_empty() {
            return Err(CatalogError::NoPrices {
                kind: kind.as_str(),
                model: o.model,
            });
        }
        self.overrides
            .entry(kind)
            .or_default()
            .insert(o.model.trim().to_string(), o.prices);
        Ok(())
    }

    /// Lets Bedrock `anthropic.claude-…` ids use the Anthropic entry of the same model
    /// when no Bedrock price or override matches (off by default; see the module docs).
    pub fn set_bedrock_uses_anthropic_prices(&mut self, on: bool) {
        self.bedrock_uses_anthropic_prices = on;
    }

    /// The cost of `usage` with today's prices.
    pub fn cost(&self, kind: ProviderKind, model: &str, usage: &Usage) -> Cost {
        self.cost_on(kind, model, usage, Day::today())
    }

    /// The cost of `usage` with the prices in force on `day` (UTC).
    pub fn cost_on(&self, kind: ProviderKind, model: &str, usage: &Usage, day: Day) -> Cost {
        let model = model.trim();
        if model.is_empty() {
            return Cost::Unpriced {
                reason: Unpriced::NoModel,
            };
        }
        let Some(found) = self.find(kind, model, usage.prompt_tokens(), day) else {
            return Cost::Unpriced {
                reason: Unpriced::UnknownModel {
                    kind,
                    model: model.to_string(),
                },
            };
        };
        let mut breakdown = Breakdown::default();
        let mut total: u128 = 0;
        for bucket in Bucket::ALL {
            let tokens = bucket.tokens(usage);
            if tokens == 0 {
                continue;
            }
            let Some(price) = found.prices.get(bucket) else {
                return Cost::Unpriced {
                    reason: Unpriced::MissingPrice {
                        kind: found.priced_as.kind,
                        model: found.priced_as.model,
                        bucket,
                        tokens,
                    },
                };
            };
            // At most 2^64 × 10^9 per bucket (MAX_USD_PER_MILLION), so the sum of seven
            // is far below 2^128.
            let cost = u128::from(tokens) * u128::from(price.nanousd_per_token());
            *breakdown.slot(bucket) = cost;
            total += cost;
        }
        Cost::Priced {
            nanousd: total,
            breakdown,
            priced_as: found.priced_as,
        }
    }

    fn find(
        &self,
        kind: ProviderKind,
        model: &str,
        prompt_tokens: u64,
        day: Day,
    ) -> Option<Found<'_>> {
        let names = candidate_names(kind, model);
        if let Some(overrides) = self.overrides.get(&kind) {
            for name in &names {
                if let Some(prices) = overrides.get(name) {
                    return Some(Found {
                        prices,
                        priced_as: PricedAs {
                            kind,
                            model: name.clone(),
                            overridden: true,
                            tier_above_prompt_tokens: None,
                        },
                    });
                }
            }
        }
        for name in &names {
            if let Some(found) = self.catalog_price(kind, name, prompt_tokens, day) {
                return Some(found);
            }
        }
        if kind == ProviderKind::Bedrock && self.bedrock_uses_anthropic_prices {
            for name in &names {
                if let Some(claude) = name.strip_prefix("anthropic.") {
                    for anthropic in candidate_names(ProviderKind::Anthropic, claude) {
                        let found = self.catalog_price(
                            ProviderKind::Anthropic,
                            &anthropic,
                            prompt_tokens,
                            day,
                        );
                        if found.is_some() {
                            return found;
                        }
                    }
                }
            }
        }
        None
    }

    /// The entry for `name` in force on `day`: the latest `effective_from` not after it.
    fn catalog_price(
        &self,
        kind: ProviderKind,
        name: &str,
        prompt_tokens: u64,
        day: Day,
    ) -> Option<Found<'_>> {
        let entry = self
            .entries(kind)
            .iter()
            .filter(|e| e.models.iter().any(|m| m == name))
            .filter(|e| e.effective_from.is_none_or(|from| from <= day))
            .max_by_key(|e| e.effective_from)?;
        let (prices, tier) = entry.prices_for(prompt_tokens);
        Some(Found {
            prices,
            priced_as: PricedAs {
                kind,
                model: name.to_string(),
                overridden: false,
                tier_above_prompt_tokens: tier,
            },
        })
    }
}

struct Found<'a> {
    prices: &'a Prices,
    priced_as: PricedAs,
}

/// Names to look `model` up by, most specific first (rules in the module docs).
pub fn candidate_names(kind: ProviderKind, model: &str) -> Vec<String> {
    let model = model.trim();
    let mut names = vec![model.to_string()];
    let mut push = |name: &str| {
        if !name.is_empty() && !names.iter().any(|n| n == name) {
            names.push(name.to_string());
        }
    };
    match kind {
        ProviderKind::Openai | ProviderKind::OpenaiCompatible => {
            if let Some(base) = strip_dashed_date(model) {
                push(base);
            }
        }
        ProviderKind::Anthropic => {
            if let Some(base) = strip_compact_date(model) {
                push(base);
            }
        }
        ProviderKind::Google => {
            let bare = model.strip_prefix("models/").unwrap_or(model);
            push(bare);
            if let Some(base) = strip_version_number(bare) {
                push(base);
            }
        }
        ProviderKind::Bedrock => {
            let id = if model.starts_with("arn:") {
                model.rsplit('/').next().unwrap_or(model)
            } else {
                model
            };
            push(id);
            let id = strip_inference_profile(id);
            push(id);
            let id = strip_bedrock_version(id);
            push(id);
            if let Some(base) = strip_compact_date(id) {
                push(base);
            }
        }
    }
    names
}

/// `…-2026-08-01` → `…`.
fn strip_dashed_date(model: &str) -> Option<&str> {
    let (base, date) = model.split_at_checked(model.len().checked_sub(11)?)?;
    let d = date.as_bytes();
    let shape = d[0] == b'-'
        && d[5] == b'-'
        && d[8] == b'-'
        && [1, 2, 3, 4, 6, 7, 9, 10]
            .iter()
            .all(|&i| d[i].is_ascii_digit());
    (shape && !base.is_empty()).then_some(base)
}

/// `…-20261001` or `…@20261001` → `…`.
fn strip_compact_date(model: &str) -> Option<&str> {
    let (base, date) = model.split_at_checked(model.len().checked_sub(9)?)?;
    let d = date.as_bytes();
    let shape = (d[0] == b'-' || d[0] == b'@') && d[1..].iter().all(u8::is_ascii_digit);
    (shape && !base.is_empty()).then_some(base)
}

/// `…-001` → `…`.
fn strip_version_number(model: &str) -> Option<&str> {
    let (base, v) = model.split_at_checked(model.len().checked_sub(4)?)?;
    let v = v.as_bytes();
    let shape = v[0] == b'-' && v[1..].iter().all(u8::is_ascii_digit);
    (shape && !base.is_empty()).then_some(base)
}

/// Cross-region inference profile prefixes (`us.anthropic.…`).
const INFERENCE_PROFILE_PREFIXES: &[&str] = &[
    "us.", "eu.", "apac.", "global.", "us-gov.", "jp.", "au.", "ca.",
];

fn strip_inference_profile(id: &str) -> &str {
    INFERENCE_PROFILE_PREFIXES
        .iter()
        .find_map(|p| id.strip_prefix(p))
        .unwrap_or(id)
}

/// `…-v1:0`, `…-v2` or `…:0` → `…`.
fn strip_bedrock_version(id: &str) -> &str {
    let id = match id.rsplit_once(':') {
        Some((base, n)) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => base,
        _ => id,
    };
    match id.rsplit_once("-v") {
        Some((base, n))
            if !base.is_empty() && !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) =>
        {
            base
        }
        _ => id,
    }
}

/// A calendar day (UTC), `YYYY-MM-DD`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Day {
    year: u16,
    month: u8,
    day: u8,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a date like 2026-12-01")]
pub struct DayError(String);

impl Day {
    pub fn new(year: u16, month: u8, day: u8) -> Result<Day, DayError> {
        let leap =
            year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400));
        let days_in_month = match month {
            1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
            4 | 6 | 9 | 11 => 30,
            2 if leap => 29,
            2 => 28,
            _ => 0,
        };
        if day == 0 || day > days_in_month {
            return Err(DayError(format!("{year:04}-{month:02}-{day:02}")));
        }
        Ok(Day { year, month, day })
    }

    pub fn parse(text: &str) -> Result<Day, DayError> {
        let bad = || DayError(text.to_string());
        let b = text.as_bytes();
        if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
            return Err(bad());
        }
        let num = |r: std::ops::Range<usize>| -> Result<u16, DayError> {
            let part = &text[r];
            if part.bytes().all(|c| c.is_ascii_digit()) {
                part.parse().map_err(|_| bad())
            } else {
                Err(bad())
            }
        };
        Day::new(num(0..4)?, num(5..7)? as u8, num(8..10)? as u8).map_err(|_| bad())
    }

    /// Today in UTC.
    pub fn today() -> Day {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        Day::from_unix_days((secs / 86_400) as i64)
    }

    /// The day `days` after 1970-01-01.
    pub fn from_unix_days(days: i64) -> Day {
        let (year, month, day) = crate::store::time::civil_from_days(days);
        Day {
            year: year.clamp(0, 9999) as u16,
            month: month as u8,
            day: day as u8,
        }
    }
}

impl fmt::Display for Day {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

impl Serialize for Day {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Day {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Day::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests;
