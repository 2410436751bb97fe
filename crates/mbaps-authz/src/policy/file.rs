//! The policy file: TOML, parsed with the position of every value so that
//! each mistake is reported at its line and column.

use core::fmt;
use core::marker::PhantomData;
use core::ops::{Range, RangeInclusive};
use std::collections::BTreeMap;

use mbaps_codec::FunctionCode;
use serde::Deserialize;
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use toml::Spanned;

use crate::access::Table;
use crate::policy::error::Problem;
use crate::policy::rules::{
    Addresses, FUNCTION_GROUPS, FunctionSet, Rule, SERIAL_GROUP, function_key,
    resolve_function_name,
};
use crate::role::Role;

/// Largest policy file accepted, in bytes.
pub const MAX_POLICY_BYTES: usize = 1024 * 1024;
/// Most rules one role (or the NULL role) may have.
pub const MAX_RULES_PER_ROLE: usize = 1000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyDoc {
    #[serde(default)]
    roles: BTreeMap<String, Spanned<RoleDoc>>,
    #[serde(default)]
    no_role: Option<Spanned<RoleDoc>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RoleDoc {
    #[serde(default)]
    #[allow(dead_code)] // documentation for the reader of the file
    description: Option<String>,
    allow: Option<Spanned<Vec<Spanned<RuleDoc>>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleDoc {
    functions: Spanned<Items<FunctionItem>>,
    units: Option<Spanned<Items<NumberItem>>>,
    coils: Option<Spanned<Items<NumberItem>>>,
    discrete_inputs: Option<Spanned<Items<NumberItem>>>,
    holding_registers: Option<Spanned<Items<NumberItem>>>,
    input_registers: Option<Spanned<Items<NumberItem>>>,
    files: Option<Spanned<Items<NumberItem>>>,
}

impl RuleDoc {
    fn table(&self, table: Table) -> Option<&Spanned<Items<NumberItem>>> {
        match table {
            Table::Coils => self.coils.as_ref(),
            Table::DiscreteInputs => self.discrete_inputs.as_ref(),
            Table::HoldingRegisters => self.holding_registers.as_ref(),
            Table::InputRegisters => self.input_registers.as_ref(),
            Table::Files => self.files.as_ref(),
        }
    }
}

/// A scalar of the file: a whole number or a string.
enum Scalar {
    Int(i64),
    Text(String),
}

/// What an item of a list may be: a function (name or code) or a number
/// (single or `"a-b"` range).
trait Item: Sized {
    const EXPECTING: &'static str;
}

struct FunctionItem(Scalar);
struct NumberItem(Scalar);

impl Item for FunctionItem {
    const EXPECTING: &'static str = "a function name (\"read\", \"read-coils\", ...) or code";
}

impl Item for NumberItem {
    const EXPECTING: &'static str = "a number or a range such as \"100-199\"";
}

struct ScalarVisitor<T>(PhantomData<T>);

impl<T: Item + From<Scalar>> Visitor<'_> for ScalarVisitor<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(T::EXPECTING)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<T, E> {
        Ok(T::from(Scalar::Int(v)))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<T, E> {
        Ok(T::from(Scalar::Int(i64::try_from(v).unwrap_or(i64::MAX))))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
        Ok(T::from(Scalar::Text(v.to_owned())))
    }
}

impl From<Scalar> for FunctionItem {
    fn from(s: Scalar) -> Self {
        FunctionItem(s)
    }
}

impl From<Scalar> for NumberItem {
    fn from(s: Scalar) -> Self {
        NumberItem(s)
    }
}

impl<'de> Deserialize<'de> for FunctionItem {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ScalarVisitor(PhantomData))
    }
}

impl<'de> Deserialize<'de> for NumberItem {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ScalarVisitor(PhantomData))
    }
}

/// One item or a list of them; each item of a list keeps its position.
struct Items<T>(Vec<(T, Option<Range<usize>>)>);

struct ItemsVisitor<T>(PhantomData<T>);

impl<'de, T: Item + From<Scalar> + Deserialize<'de>> Visitor<'de> for ItemsVisitor<T> {
    type Value = Items<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}, or a list of them", T::EXPECTING)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Items<T>, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Spanned<T>>()? {
            let span = item.span();
            items.push((item.into_inner(), Some(span)));
        }
        Ok(Items(items))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Items<T>, E> {
        Ok(Items(vec![(T::from(Scalar::Int(v)), None)]))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Items<T>, E> {
        self.visit_i64(i64::try_from(v).unwrap_or(i64::MAX))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Items<T>, E> {
        Ok(Items(vec![(T::from(Scalar::Text(v.to_owned())), None)]))
    }
}

impl<'de, T: Item + From<Scalar> + Deserialize<'de>> Deserialize<'de> for Items<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ItemsVisitor(PhantomData))
    }
}

/// The parsed file: roles with their rules, and the NULL role's rules.
pub(crate) struct ParsedPolicy {
    pub(crate) roles: Vec<(Role, Vec<Rule>)>,
    pub(crate) no_role: Vec<Rule>,
}

/// Collects the mistakes of a file with their positions.
struct Checker<'a> {
    text: &'a str,
    problems: Vec<Problem>,
}

impl Checker<'_> {
    fn report(&mut self, span: &Range<usize>, message: String) {
        let (line, column) = line_column(self.text, span.start);
        self.problems.push(Problem {
            line,
            column,
            message,
        });
    }
}

/// 1-based line and column (in characters) of a byte offset of `text`:
/// where a [`Problem`] of a file is reported (the gateway's configuration file
/// reports its mistakes the same way).
pub fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset.min(text.len())).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

/// Parses a policy file and checks every value, reporting every mistake.
pub(crate) fn parse(text: &str) -> Result<ParsedPolicy, Vec<Problem>> {
    if text.len() > MAX_POLICY_BYTES {
        return Err(vec![Problem {
            line: 1,
            column: 1,
            message: format!(
                "the policy is {} bytes long; at most {MAX_POLICY_BYTES} are accepted",
                text.len()
            ),
        }]);
    }
    let doc: PolicyDoc = toml::from_str(text).map_err(|err| {
        let span = err.span().unwrap_or(0..0);
        let (line, column) = line_column(text, span.start);
        let mut message = err.message().trim_end().to_owned();
        if message == "duplicate key" {
            let key = text.get(span).unwrap_or("").trim();
            message = format!(
                "duplicate key {key:?}: a role, and a key within one table, may be defined only once"
            );
        }
        vec![Problem {
            line,
            column,
            message,
        }]
    })?;
    let mut checker = Checker {
        text,
        problems: Vec::new(),
    };
    let mut roles = Vec::with_capacity(doc.roles.len());
    for (name, role_doc) in &doc.roles {
        let rules = checker.rules(role_doc);
        match Role::new(name) {
            Ok(role) => roles.push((role, rules)),
            Err(err) => checker.report(&role_doc.span(), format!("role name {name:?}: {err}")),
        }
    }
    let no_role = match &doc.no_role {
        Some(role_doc) => checker.rules(role_doc),
        None => Vec::new(),
    };
    if checker.problems.is_empty() {
        Ok(ParsedPolicy { roles, no_role })
    } else {
        checker.problems.sort_by_key(|p| (p.line, p.column));
        Err(checker.problems)
    }
}

impl Checker<'_> {
    fn rules(&mut self, role: &Spanned<RoleDoc>) -> Vec<Rule> {
        let Some(allow) = &role.get_ref().allow else {
            return Vec::new();
        };
        if allow.get_ref().len() > MAX_RULES_PER_ROLE {
            self.report(
                &allow.span(),
                format!(
                    "{} rules; at most {MAX_RULES_PER_ROLE} are allowed for one role",
                    allow.get_ref().len()
                ),
            );
            return Vec::new();
        }
        allow
            .get_ref()
            .iter()
            .filter_map(|rule| self.rule(rule))
            .collect()
    }

    fn rule(&mut self, rule: &Spanned<RuleDoc>) -> Option<Rule> {
        let doc = rule.get_ref();
        let before = self.problems.len();
        let functions = self.functions(&doc.functions);
        let units = doc
            .units
            .as_ref()
            .map(|units| self.numbers(units, "units", "unit", 255));
        if let (Some(units), Some(doc_units)) = (&units, &doc.units)
            && units.is_empty()
            && doc_units.get_ref().0.is_empty()
        {
            self.report(
                    &doc_units.span(),
                    "units is empty, so the rule applies to no unit; leave the key out to apply it to every unit".into(),
                );
        }
        let mut addresses: Option<Addresses> = None;
        for table in Table::ALL {
            if let Some(items) = doc.table(table) {
                let what = if table == Table::Files {
                    "file number"
                } else {
                    "address"
                };
                let ranges = self.numbers(items, table.key(), what, 65535);
                let addresses = addresses.get_or_insert_with(Addresses::new);
                for range in ranges {
                    let range = (*range.start() as u16)..=(*range.end() as u16);
                    addresses.allow(table, range);
                }
            }
        }
        if let Some(addresses) = &addresses
            && Table::ALL.iter().all(|&t| addresses.ranges(t).is_empty())
            && self.problems.len() == before
        {
            self.report(
                &rule.span(),
                "the rule lists no address of any table, so it allows nothing".into(),
            );
        }
        (self.problems.len() == before).then(|| Rule {
            functions,
            units: units.map(|ranges| {
                ranges
                    .into_iter()
                    .map(|r| (*r.start() as u8)..=(*r.end() as u8))
                    .collect()
            }),
            addresses,
        })
    }

    fn functions(&mut self, items: &Spanned<Items<FunctionItem>>) -> FunctionSet {
        let mut set = FunctionSet::new();
        if items.get_ref().0.is_empty() {
            self.report(
                &items.span(),
                "functions is empty: a rule must allow at least one function".into(),
            );
        }
        for (FunctionItem(item), span) in &items.get_ref().0 {
            let span = span.clone().unwrap_or_else(|| items.span());
            match item {
                Scalar::Int(code) => match u8::try_from(*code).map(FunctionCode::from_code) {
                    Ok(Ok(function)) => set.insert(function.code()),
                    Ok(Err(_)) => {
                        self.report(
                            &span,
                            format!("function code {code} is not a Modbus function code"),
                        );
                    }
                    Err(_) => {
                        self.report(&span, format!("function code {code} is outside 1..=127"))
                    }
                },
                Scalar::Text(name) => match resolve_function_name(name) {
                    Some(codes) => codes.iter().for_each(|c| set.insert(c)),
                    None => {
                        let hint = closest_function_name(name)
                            .map(|n| format!("did you mean {n:?}? "))
                            .unwrap_or_default();
                        self.report(
                            &span,
                            format!(
                                "unknown function {name:?}: {hint}use a group (read, write, diagnostic, user-defined, all, serial), a function such as \"read-holding-registers\", or a function code such as 3"
                            ),
                        );
                    }
                },
            }
        }
        set
    }

    /// Numbers and `"a-b"` ranges of one key, each within 0..=max, none
    /// reversed, none overlapping another.
    fn numbers(
        &mut self,
        items: &Spanned<Items<NumberItem>>,
        key: &str,
        what: &str,
        max: u32,
    ) -> Vec<RangeInclusive<u32>> {
        let mut ranges: Vec<(RangeInclusive<u32>, Range<usize>)> = Vec::new();
        for (NumberItem(item), span) in &items.get_ref().0 {
            let span = span.clone().unwrap_or_else(|| items.span());
            match parse_range(item, max) {
                Ok(range) => ranges.push((range, span)),
                Err(message) => self.report(&span, format!("{key}: {what} {message}")),
            }
        }
        let mut sorted: Vec<&(RangeInclusive<u32>, Range<usize>)> = ranges.iter().collect();
        sorted.sort_by_key(|(range, _)| *range.start());
        for pair in sorted.windows(2) {
            let ((earlier, _), (later, span)) = (pair[0], pair[1]);
            if later.start() <= earlier.end() {
                self.report(
                    span,
                    format!(
                        "{key}: {} overlaps {}; list each {what} once",
                        show(later),
                        show(earlier)
                    ),
                );
            }
        }
        ranges.into_iter().map(|(range, _)| range).collect()
    }
}

fn show(range: &RangeInclusive<u32>) -> String {
    if range.start() == range.end() {
        range.start().to_string()
    } else {
        format!("{}-{}", range.start(), range.end())
    }
}

fn parse_number(text: &str) -> Option<u32> {
    let text = text.trim();
    match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) => u32::from_str_radix(hex, 16).ok(),
        None => text.parse().ok(),
    }
}

fn parse_range(item: &Scalar, max: u32) -> Result<RangeInclusive<u32>, String> {
    let in_range = |n: i64| -> Result<u32, String> {
        u32::try_from(n)
            .ok()
            .filter(|&n| n <= max)
            .ok_or_else(|| format!("{n} is outside 0..={max}"))
    };
    match item {
        Scalar::Int(n) => in_range(*n).map(|n| n..=n),
        Scalar::Text(text) => {
            let (start, end) = match text.split_once('-') {
                Some((start, end)) => (start, end),
                None => (text.as_str(), text.as_str()),
            };
            let (Some(start), Some(end)) = (parse_number(start), parse_number(end)) else {
                return Err(format!(
                    "{text:?} is not a number or a range such as \"100-199\""
                ));
            };
            let (start, end) = (in_range(start.into())?, in_range(end.into())?);
            if start > end {
                return Err(format!(
                    "range {text:?} is reversed: write \"{end}-{start}\""
                ));
            }
            Ok(start..=end)
        }
    }
}

/// The known function name or group closest to a misspelt one, if close.
fn closest_function_name(name: &str) -> Option<&'static str> {
    let groups = FUNCTION_GROUPS
        .iter()
        .chain([&SERIAL_GROUP])
        .map(|(group, _)| *group);
    let functions = FunctionCode::STANDARD
        .iter()
        .chain(&FunctionCode::SERIAL_LINE)
        .filter_map(|&f| function_key(f));
    groups
        .chain(functions)
        .chain(["all"])
        .map(|known| (edit_distance(name, known), known))
        .filter(|&(distance, known)| distance <= 2.max(known.len() / 4))
        .min()
        .map(|(_, known)| known)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (diagonal + usize::from(ca != cb))
                .min(row[j] + 1)
                .min(above + 1);
            diagonal = above;
        }
    }
    row[b.len()]
}
