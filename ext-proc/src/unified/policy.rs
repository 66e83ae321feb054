//! Routing policies: [CEL](https://cel.dev) expressions over the request and the caller, each
//! with an action. On the unified endpoint, after authentication, the policies are tried in
//! config order and the first whose `when` is true decides: `deny` answers 403 with its
//! message, `route` sends the request to the named virtual model, whatever `model` the client
//! asked for. When none is true the request goes on as asked.
//!
//! ```yaml
//! policies:
//!   - when: "!('ml' in principal.groups) && request.model.startsWith('gpt-5')"
//!     deny: "gpt-5 is for the ML team"
//!   - when: "request.estimated_input_tokens > 100000"
//!     route: long-context
//!   - when: "request.headers['x-team'] == 'ml' && !request.stream"
//!     route: ml-batch
//! ```
//!
//! # Variables
//!
//! | Variable | Type | Value |
//! |---|---|---|
//! | `request.path` | string | The request path, e.g. `/llm/v1/chat/completions`. |
//! | `request.headers` | map(string, string) | The request headers, by lowercase name; a repeated header's values joined with `,`. The credential headers `authorization`, `proxy-authorization`, `x-api-key`, `x-goog-api-key`, `x-gateway-token` and `cookie` are left out. |
//! | `request.model` | string | The `model` the client asked for. |
//! | `request.stream` | bool | Whether the client asked for a stream. |
//! | `request.estimated_input_tokens` | int | About a quarter of the body's size in bytes: an estimate, for routing only. |
//! | `principal.subject` | string | The API key's name, or the token's `sub`. |
//! | `principal.user` | string | The caller's user; `""` when there is none. |
//! | `principal.agent` | string | The caller's agent; `""` when there is none. |
//! | `principal.groups` | list(string) | The caller's groups. |
//! | `principal.scopes` | list(string) | The token's scopes. |
//! | `principal.issuer` | string | The token's issuer; `""` for an API key. |
//! | `principal.client_id` | string | The token's `azp` or `client_id`; `""` when there is none. |
//! | `principal.method` | string | `"api_key"`, `"oidc"` or `"anonymous"`. |
//!
//! Every field is always there, so no expression needs `has()` for them; an absent value is
//! the empty string or the empty list. A header may be missing, though: look it up with
//! `'x-team' in request.headers && request.headers['x-team'] == 'ml'`, or rely on a missing
//! key making the whole expression false.
//!
//! The functions are CEL's standard ones: `size`, `in`, `startsWith`, `endsWith`,
//! `contains`, `matches` (a regular expression, in the syntax of the Rust `regex` crate),
//! the macros `has`, `exists`, `all`, `exists_one`, `map`, `filter`, and conversions such as
//! `int()` and `string()`. `matches` compiles its pattern each time it runs; on a busy
//! endpoint prefer `startsWith`, `endsWith` or `contains` where they do.
//!
//! # Errors
//!
//! The expressions are compiled once, at start-up. An expression that does not parse, that
//! names a field `request` or `principal` do not have (`principal.group`), a variable or
//! function that does not exist (`reqest.model`), or gives `matches` a pattern that is not a
//! valid regular expression, is refused then, with the policy's index and the position.
//!
//! While serving, an expression that fails to evaluate (a missing header, comparing a string
//! with an int, ...) or whose value is not a bool counts as false: that policy does not match
//! and the next one is tried. The failure is logged with the policy's index, never with a
//! header's value; a missing map key (usually a header the client did not send) at `debug`,
//! anything else at `warn`.

use crate::auth::{Method, Principal};
use aigw_core::config::{Policy, PolicyAction};
use axum::http::HeaderMap;
use cel::common::ast::{EntryExpr, Expr, IdedEntryExpr, IdedExpr, LiteralValue, SourceInfo};
use cel::common::types::{CelBool, CelInt, CelList, CelMap, CelMapKey, CelString};
use cel::common::value::Val;
use cel::{Context, Env, ExecutionError, Program, Value};
use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

/// Header names whose values are never visible to an expression: they carry credentials.
const HIDDEN_HEADERS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "x-api-key",
    "x-goog-api-key",
    "x-gateway-token",
    "cookie",
];

/// The fields of `request`, and of `principal`, in the order the module doc lists them.
const REQUEST_FIELDS: &[&str] = &[
    "path",
    "headers",
    "model",
    "stream",
    "estimated_input_tokens",
];
const PRINCIPAL_FIELDS: &[&str] = &[
    "subject",
    "user",
    "agent",
    "groups",
    "scopes",
    "issuer",
    "client_id",
    "method",
];

/// The compiled policies, in config order. Compiled once at start-up, never per request.
pub struct Policies {
    /// CEL's standard library, shared by every evaluation's context.
    env: Arc<Env>,
    compiled: Vec<Compiled>,
}

struct Compiled {
    program: Program,
    action: PolicyAction,
}

/// What an expression sees of one request.
pub struct PolicyInput<'a> {
    /// The request path, e.g. "/llm/v1/chat/completions".
    pub path: &'a str,
    /// Request headers (names are lowercase).
    pub headers: &'a axum::http::HeaderMap,
    /// The `model` the client asked for.
    pub model: &'a str,
    pub stream: bool,
    pub estimated_input_tokens: u64,
    pub principal: &'a crate::auth::Principal,
}

impl std::fmt::Debug for Policies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Policies")
            .field("len", &self.compiled.len())
            .finish_non_exhaustive()
    }
}

impl Policies {
    /// Compiles every `when`. An invalid expression fails with a message naming the field,
    /// the expression and the error position, e.g.
    /// "policies[1].when: `request.model ==` is not valid CEL: line 1, column 17: Syntax
    /// error: mismatched input '<EOF>' expecting ...".
    pub fn compile(policies: &[Policy]) -> Result<Self, String> {
        let env = Arc::new(Env::stdlib());
        let mut compiled = Vec::with_capacity(policies.len());
        for (i, policy) in policies.iter().enumerate() {
            let source = policy.when.as_str();
            let invalid = |why: String| {
                format!(
                    "policies[{i}].when: `{}` is not valid CEL: {why}",
                    one_line(source)
                )
            };
            let program = env.compile(source).map_err(|e| {
                let why: Vec<String> = e
                    .errors
                    .iter()
                    .map(|e| format!("line {}, column {}: {}", e.pos.0, e.pos.1, e.msg))
                    .collect();
                invalid(why.join("; "))
            })?;
            check(&env, program.expression(), program.source_info(), false).map_err(invalid)?;
            dry_run(&env, &program).map_err(invalid)?;
            compiled.push(Compiled {
                program,
                action: policy.action.clone(),
            });
        }
        Ok(Self { env, compiled })
    }

    pub fn is_empty(&self) -> bool {
        self.compiled.is_empty()
    }

    /// The action of the first policy whose expression is true; None when none is.
    /// An expression that fails to evaluate or does not yield a bool counts as false
    /// (logged with the policy index, never header values).
    pub fn decide(&self, input: &PolicyInput<'_>) -> Option<&PolicyAction> {
        if self.compiled.is_empty() {
            return None;
        }
        let mut ctx = Context::with_env(Arc::clone(&self.env));
        ctx.add_variable_as_val("request", Box::new(request_val(input)));
        ctx.add_variable_as_val("principal", Box::new(principal_val(input.principal)));
        for (i, c) in self.compiled.iter().enumerate() {
            match c.program.execute(&ctx) {
                Ok(Value::Bool(true)) => return Some(&c.action),
                Ok(Value::Bool(false)) => {}
                Ok(other) => tracing::warn!(
                    policy = i,
                    "policies[{i}].when yields {}, not a bool: counted as false",
                    other.type_of()
                ),
                Err(ExecutionError::NoSuchKey(key)) => {
                    // Usually a header the client did not send; its name is only logged when
                    // the expression spells it, so it never comes from a value.
                    let key = if c.program.source_info().source.contains(key.as_str()) {
                        key.as_str()
                    } else {
                        "(computed)"
                    };
                    tracing::debug!(
                        policy = i,
                        "policies[{i}].when: no key '{key}' in the map: counted as false"
                    );
                }
                Err(e) => tracing::warn!(
                    policy = i,
                    "policies[{i}].when failed to evaluate ({}): counted as false",
                    describe(&e)
                ),
            }
        }
        None
    }
}

/// The `request` variable. Strings borrow from the input; only a repeated header is copied,
/// to join its values.
fn request_val<'a>(input: &PolicyInput<'a>) -> CelMap<'a> {
    let headers: &'a HeaderMap = input.headers;
    let mut h: HashMap<CelMapKey<'a>, Box<dyn Val + 'a>> =
        HashMap::with_capacity(headers.keys_len());
    for name in headers.keys() {
        let name = name.as_str();
        if HIDDEN_HEADERS.contains(&name) {
            continue;
        }
        let mut values = headers.get_all(name).iter();
        let Some(first) = values.next() else { continue };
        let mut value = String::from_utf8_lossy(first.as_bytes());
        for v in values {
            let joined = value.to_mut();
            joined.push(',');
            joined.push_str(&String::from_utf8_lossy(v.as_bytes()));
        }
        h.insert(CelMapKey::from(name), Box::new(CelString::from(value)));
    }
    let tokens = i64::try_from(input.estimated_input_tokens).unwrap_or(i64::MAX);
    let fields: [(&'static str, Box<dyn Val + 'a>); 5] = [
        ("path", Box::new(CelString::from(input.path))),
        ("headers", Box::new(CelMap::from(h))),
        ("model", Box::new(CelString::from(input.model))),
        ("stream", Box::new(CelBool::from(input.stream))),
        ("estimated_input_tokens", Box::new(CelInt::from(tokens))),
    ];
    CelMap::from(
        fields
            .into_iter()
            .map(|(k, v)| (CelMapKey::from(k), v))
            .collect::<HashMap<_, _>>(),
    )
}

/// The `principal` variable, borrowing the principal's strings.
fn principal_val(p: &Principal) -> CelMap<'_> {
    fn s(v: &str) -> Box<dyn Val + '_> {
        Box::new(CelString::from(v))
    }
    fn opt(v: &Option<String>) -> Box<dyn Val + '_> {
        s(v.as_deref().unwrap_or(""))
    }
    fn list(v: &[String]) -> Box<dyn Val + '_> {
        Box::new(CelList::from(v.iter().map(|x| s(x)).collect::<Vec<_>>()))
    }
    let method = match p.method {
        Method::ApiKey => "api_key",
        Method::Oidc => "oidc",
        Method::Anonymous => "anonymous",
    };
    let fields: [(&'static str, Box<dyn Val + '_>); 8] = [
        ("subject", s(&p.subject)),
        ("user", opt(&p.user)),
        ("agent", opt(&p.agent)),
        ("groups", list(&p.groups)),
        ("scopes", list(&p.scopes)),
        ("issuer", opt(&p.issuer)),
        ("client_id", opt(&p.client_id)),
        ("method", s(method)),
    ];
    CelMap::from(
        fields
            .into_iter()
            .map(|(k, v)| (CelMapKey::from(k), v))
            .collect::<HashMap<_, _>>(),
    )
}

/// The sub-expressions of `e`.
fn children(e: &IdedExpr) -> Vec<&IdedExpr> {
    fn entries(entries: &[IdedEntryExpr]) -> Vec<&IdedExpr> {
        entries
            .iter()
            .flat_map(|entry| match &entry.expr {
                EntryExpr::MapEntry(me) => vec![&me.key, &me.value],
                EntryExpr::StructField(f) => vec![&f.value],
            })
            .collect()
    }
    match &e.expr {
        Expr::Select(sel) => vec![&*sel.operand],
        Expr::Call(call) => call
            .target
            .as_deref()
            .into_iter()
            .chain(&call.args)
            .collect(),
        Expr::Comprehension(c) => vec![
            &c.iter_range,
            &c.accu_init,
            &c.loop_cond,
            &c.loop_step,
            &c.result,
        ],
        Expr::List(l) => l.elements.iter().collect(),
        Expr::Map(m) => entries(&m.entries),
        Expr::Struct(s) => entries(&s.entries),
        Expr::Ident(_) | Expr::Literal(_) | Expr::Unspecified => Vec::new(),
    }
}

/// Refuses what can be told wrong from the expression alone: a field `request` or
/// `principal` lacks, and a literal `matches` pattern that is not a regular expression.
/// `shadowed` is set inside a comprehension whose variable hides `request` or `principal`.
fn check(env: &Arc<Env>, e: &IdedExpr, info: &SourceInfo, shadowed: bool) -> Result<(), String> {
    match &e.expr {
        Expr::Select(sel) if !shadowed => {
            if let Expr::Ident(var) = &sel.operand.expr {
                let fields = match var.as_str() {
                    "request" => REQUEST_FIELDS,
                    "principal" => PRINCIPAL_FIELDS,
                    _ => &[][..],
                };
                if !fields.is_empty() && !fields.contains(&sel.field.as_str()) {
                    return Err(format!(
                        "{}: `{var}` has no field `{}` (it has {})",
                        position(info, e.id),
                        sel.field,
                        fields.join(", ")
                    ));
                }
            }
        }
        Expr::Call(call) if call.func_name == "matches" => {
            if let Some(IdedExpr {
                expr: Expr::Literal(LiteralValue::String(pattern)),
                id,
            }) = call.args.last()
            {
                check_pattern(env, pattern.inner())
                    .map_err(|why| format!("{}: {why}", position(info, *id)))?;
            }
        }
        Expr::Comprehension(c) => {
            let hides = |v: &str| v == "request" || v == "principal";
            let inner = shadowed
                || hides(&c.iter_var)
                || hides(&c.accu_var)
                || c.iter_var2.as_deref().is_some_and(hides);
            check(env, &c.iter_range, info, shadowed)?;
            check(env, &c.accu_init, info, shadowed)?;
            check(env, &c.loop_cond, info, inner)?;
            check(env, &c.loop_step, info, inner)?;
            return check(env, &c.result, info, inner);
        }
        _ => {}
    }
    children(e)
        .into_iter()
        .try_for_each(|c| check(env, c, info, shadowed))
}

/// Whether `matches` accepts `pattern`, asked of CEL itself so the regex engine is its own.
fn check_pattern(env: &Arc<Env>, pattern: &str) -> Result<(), String> {
    let program = env
        .compile("''.matches(p)")
        .map_err(|e| format!("checking a pattern: {e}"))?;
    let mut ctx = Context::with_env(Arc::clone(env));
    ctx.add_variable_as_val("p", Box::new(CelString::from(pattern)));
    match program.execute(&ctx) {
        Err(ExecutionError::FunctionError { message, .. }) => Err(format!(
            "`matches` pattern: {}",
            message.split_whitespace().collect::<Vec<_>>().join(" ")
        )),
        _ => Ok(()),
    }
}

/// Evaluates the program once against an empty request: an undeclared variable or function
/// (a typo such as `reqest.model`) is an error for every request that reaches it, so is
/// refused now. Other errors depend on the request (a missing header) and are left alone.
fn dry_run(env: &Arc<Env>, program: &Program) -> Result<(), String> {
    let principal = Principal::bare(Method::Anonymous, "");
    let headers = HeaderMap::new();
    let input = PolicyInput {
        path: "",
        headers: &headers,
        model: "",
        stream: false,
        estimated_input_tokens: 0,
        principal: &principal,
    };
    let mut ctx = Context::with_env(Arc::clone(env));
    ctx.add_variable_as_val("request", Box::new(request_val(&input)));
    ctx.add_variable_as_val("principal", Box::new(principal_val(&principal)));
    match program.execute(&ctx) {
        Err(ExecutionError::UndeclaredReference(name)) => {
            let at = find_name(program.expression(), &name)
                .map(|id| format!("{}: ", position(program.source_info(), id)))
                .unwrap_or_default();
            Err(format!(
                "{at}`{name}` is neither a variable (`request`, `principal`) nor a CEL function"
            ))
        }
        _ => Ok(()),
    }
}

/// The first identifier or call named `name`, for its position.
fn find_name(e: &IdedExpr, name: &str) -> Option<u64> {
    match &e.expr {
        Expr::Ident(n) if n == name => Some(e.id),
        Expr::Call(call) if call.func_name == name => Some(e.id),
        _ => children(e).into_iter().find_map(|c| find_name(c, name)),
    }
}

/// "line L, column C" of the node `id`, counted in characters from 1.
fn position(info: &SourceInfo, id: u64) -> String {
    let Some((start, _)) = info.offset_for(id) else {
        return "unknown position".into();
    };
    let (mut line, mut column) = (1, 1);
    for ch in info.source.chars().take(start as usize) {
        if ch == '\n' {
            line += 1;
            column = 1;
        } else {
            column += 1;
        }
    }
    format!("line {line}, column {column}")
}

/// `source` on one line: line breaks and tabs escaped, as in a YAML double-quoted string.
fn one_line(source: &str) -> Cow<'_, str> {
    if !source.contains(['\n', '\r', '\t']) {
        return Cow::Borrowed(source);
    }
    Cow::Owned(
        source
            .replace('\n', "\\n")
            .replace('\r', "\\r")
            .replace('\t', "\\t"),
    )
}

/// An evaluation error for the log, without the values it may carry (a header's, say).
fn describe(e: &ExecutionError) -> String {
    match e {
        ExecutionError::NoSuchOverload(o) => o.to_string(),
        ExecutionError::UndeclaredReference(name) => format!("undeclared reference to '{name}'"),
        ExecutionError::FunctionError { function, .. } => format!("error in '{function}'"),
        ExecutionError::InvalidArgumentCount { expected, actual } => {
            format!("{actual} arguments where {expected} are expected")
        }
        ExecutionError::UnexpectedType { got, want } => format!("got a {got}, want a {want}"),
        ExecutionError::ValuesNotComparable(a, b) => {
            format!("a {} can not be compared to a {}", a.type_of(), b.type_of())
        }
        ExecutionError::UnsupportedBinaryOperator(op, a, b) => {
            format!(
                "'{op}' does not apply to {} and {}",
                a.type_of(),
                b.type_of()
            )
        }
        ExecutionError::DivisionByZero(_) => "division by zero".into(),
        ExecutionError::RemainderByZero(_) => "remainder by zero".into(),
        ExecutionError::Overflow(op, ..) => format!("overflow in '{op}'"),
        ExecutionError::IndexOutOfBounds(_) => "index out of bounds".into(),
        _ => "evaluation error".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn principal() -> Principal {
        Principal {
            user: Some("alice".into()),
            groups: vec!["ml".into(), "admins".into()],
            scopes: vec!["llm:chat".into()],
            ..Principal::bare(Method::ApiKey, "ci-bot")
        }
    }

    fn policy(when: &str, action: PolicyAction) -> Policy {
        Policy {
            when: when.into(),
            action,
        }
    }

    fn route(pool: &str) -> PolicyAction {
        PolicyAction::Route(pool.into())
    }

    fn deny(message: &str) -> PolicyAction {
        PolicyAction::Deny(message.into())
    }

    struct Req {
        path: &'static str,
        headers: HeaderMap,
        model: &'static str,
        stream: bool,
        tokens: u64,
        principal: Principal,
    }

    impl Req {
        fn new() -> Self {
            Self {
                path: "/llm/v1/chat/completions",
                headers: HeaderMap::new(),
                model: "gpt-5",
                stream: false,
                tokens: 10,
                principal: principal(),
            }
        }

        fn header(mut self, name: &'static str, value: &'static str) -> Self {
            self.headers.append(name, HeaderValue::from_static(value));
            self
        }

        fn decide<'p>(&self, p: &'p Policies) -> Option<&'p PolicyAction> {
            p.decide(&PolicyInput {
                path: self.path,
                headers: &self.headers,
                model: self.model,
                stream: self.stream,
                estimated_input_tokens: self.tokens,
                principal: &self.principal,
            })
        }
    }

    /// One policy routing to "hit" when `when` is true.
    fn matches(when: &str, req: &Req) -> bool {
        let p = Policies::compile(&[policy(when, route("hit"))]).unwrap();
        req.decide(&p) == Some(&route("hit"))
    }

    #[test]
    fn policies_are_shareable_between_tasks() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Policies>();
    }

    #[test]
    fn empty() {
        let p = Policies::compile(&[]).unwrap();
        assert!(p.is_empty());
        assert_eq!(Req::new().decide(&p), None);
        let p = Policies::compile(&[policy("true", route("x"))]).unwrap();
        assert!(!p.is_empty());
    }

    #[test]
    fn by_model_allow_deny_route() {
        let p = Policies::compile(&[
            policy("request.model == 'gpt-5'", deny("no gpt-5 here")),
            policy("request.model.startsWith('claude')", route("anthropic")),
        ])
        .unwrap();
        let mut req = Req::new();
        assert_eq!(req.decide(&p), Some(&deny("no gpt-5 here")));
        req.model = "claude-sonnet-4";
        assert_eq!(req.decide(&p), Some(&route("anthropic")));
        req.model = "gemini-2.5-pro";
        assert_eq!(req.decide(&p), None, "no policy matches: allowed as asked");
    }

    #[test]
    fn by_group_membership() {
        let mut req = Req::new();
        assert!(matches("'admins' in principal.groups", &req));
        req.principal.groups = vec!["ml".into()];
        assert!(!matches("'admins' in principal.groups", &req));
        assert!(matches(
            "principal.groups.exists(g, g.startsWith('m'))",
            &req
        ));
        assert!(matches("'llm:chat' in principal.scopes", &req));
    }

    #[test]
    fn principal_fields() {
        let mut req = Req::new();
        assert!(matches(
            "principal.subject == 'ci-bot' && principal.user == 'alice' && \
             principal.method == 'api_key'",
            &req
        ));
        // Absent values are empty strings, without `has()`.
        assert!(matches(
            "principal.agent == '' && principal.issuer == '' && principal.client_id == ''",
            &req
        ));
        req.principal.method = Method::Oidc;
        req.principal.issuer = Some("https://idp.example".into());
        req.principal.client_id = Some("cli".into());
        assert!(matches(
            "principal.method == 'oidc' && principal.issuer.endsWith('example') && \
             principal.client_id == 'cli'",
            &req
        ));
        req.principal.method = Method::Anonymous;
        assert!(matches("principal.method == 'anonymous'", &req));
    }

    #[test]
    fn by_header() {
        let when = "request.headers['x-team'] == 'ml'";
        assert!(matches(when, &Req::new().header("x-team", "ml")));
        assert!(!matches(when, &Req::new().header("x-team", "web")));
        // A missing header makes the expression false, and the next policy is tried.
        let p = Policies::compile(&[policy(when, route("ml")), policy("true", route("default"))])
            .unwrap();
        assert_eq!(Req::new().decide(&p), Some(&route("default")));
        assert!(matches(
            "!('x-team' in request.headers)",
            &Req::new().header("x-other", "1")
        ));
        // A repeated header is joined with ",".
        let req = Req::new().header("x-tag", "a").header("x-tag", "b");
        assert!(matches("request.headers['x-tag'] == 'a,b'", &req));
    }

    #[test]
    fn credential_headers_are_not_visible() {
        let req = Req::new()
            .header("authorization", "Bearer secret")
            .header("x-api-key", "secret")
            .header("x-goog-api-key", "secret")
            .header("x-gateway-token", "secret")
            .header("cookie", "session=secret")
            .header("proxy-authorization", "Basic secret")
            .header("x-team", "ml");
        for name in HIDDEN_HEADERS {
            assert!(
                !matches(&format!("'{name}' in request.headers"), &req),
                "{name} is visible"
            );
        }
        assert!(!matches(
            "request.headers.exists(k, request.headers[k].contains('secret'))",
            &req
        ));
        assert!(matches("size(request.headers) == 1", &req));
    }

    #[test]
    fn by_stream_tokens_and_path() {
        let mut req = Req::new();
        assert!(!matches("request.stream", &req));
        req.stream = true;
        assert!(matches("request.stream", &req));
        assert!(!matches("request.estimated_input_tokens > 1000", &req));
        req.tokens = 1001;
        assert!(matches("request.estimated_input_tokens > 1000", &req));
        req.tokens = u64::MAX;
        assert!(matches("request.estimated_input_tokens > 1000", &req));
        assert!(matches("request.path == '/llm/v1/chat/completions'", &req));
        assert!(matches(
            "request.path.matches('^/llm/v1/(chat|embeddings)')",
            &req
        ));
    }

    #[test]
    fn first_matching_policy_wins() {
        let p = Policies::compile(&[
            policy("request.model == 'other'", deny("not this one")),
            policy("'ml' in principal.groups", route("first")),
            policy("'admins' in principal.groups", route("second")),
            policy("true", deny("nor this one")),
        ])
        .unwrap();
        assert_eq!(Req::new().decide(&p), Some(&route("first")));
    }

    #[test]
    fn non_bool_and_failing_expressions_count_as_false() {
        let p = Policies::compile(&[
            policy("request.model", route("string")),
            policy("request.estimated_input_tokens + 1", route("int")),
            policy("request.model > 1", route("mismatch")),
            policy("request.estimated_input_tokens / 0 == 1", route("division")),
            policy("true", route("last")),
        ])
        .unwrap();
        assert_eq!(Req::new().decide(&p), Some(&route("last")));
    }

    #[test]
    fn invalid_expression_names_field_expression_and_position() {
        let err = match Policies::compile(&[
            policy("true", route("a")),
            policy("request.model ==", route("b")),
        ]) {
            Err(e) => e,
            Ok(_) => panic!("compiled"),
        };
        assert!(
            err.starts_with(
                "policies[1].when: `request.model ==` is not valid CEL: line 1, column 17: "
            ),
            "{err}"
        );
        assert!(err.contains("Syntax error"), "{err}");
        assert!(!err.contains('\n'), "one line: {err}");

        let err = Policies::compile(&[policy("true &&\n  (1 +", route("a"))])
            .err()
            .unwrap();
        assert!(err.starts_with("policies[0].when: "), "{err}");
        assert!(err.contains("line 2, column"), "{err}");
        assert!(
            err.starts_with("policies[0].when: `true &&\\n  (1 +` is not valid CEL: "),
            "the expression on one line: {err}"
        );
    }

    #[test]
    fn unknown_names_are_refused_at_compile() {
        let err = |when: &str| {
            Policies::compile(&[policy(when, route("a"))])
                .err()
                .unwrap_or_else(|| panic!("`{when}` compiled"))
        };
        let e = err("'ml' in principal.group");
        assert!(
            e.starts_with(
                "policies[0].when: `'ml' in principal.group` is not valid CEL: line 1, column "
            ),
            "{e}"
        );
        assert!(e.contains("`principal` has no field `group`"), "{e}");
        assert!(err("has(request.foo)").contains("`request` has no field `foo`"));
        assert!(
            err("reqest.model == 'x'").contains("line 1, column 1: `reqest` is neither a variable")
        );
        assert!(err("request.model.lowerAscii() == 'x'").contains("`lowerAscii`"));
        let e = err("request.path.matches('(unclosed')");
        assert!(e.contains("`matches` pattern"), "{e}");
        // A comprehension variable may hide a name; a header may be any key.
        Policies::compile(&[
            policy("[{'x': 1}].exists(request, request.x == 1)", route("a")),
            policy("request.headers.anything == 'x'", route("a")),
            policy("principal.groups.all(g, g != '')", route("a")),
        ])
        .unwrap();
    }
}
