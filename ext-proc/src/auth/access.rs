//! Access lists: a provider's `access` (else the config's `default_access`) lists who may use
//! it; a principal matching any rule may. No list at all: every authenticated caller may.

use super::{Method, Principal};
use aigw_core::config::AccessRule;

pub fn permits(rules: Option<&[AccessRule]>, p: &Principal) -> bool {
    let Some(rules) = rules else {
        return true;
    };
    rules.iter().any(|r| matches(r, p))
}

fn matches(rule: &AccessRule, p: &Principal) -> bool {
    match rule {
        AccessRule::ApiKey(name) => p.method == Method::ApiKey && p.subject == *name,
        AccessRule::Subject(s) => p.method == Method::Oidc && p.subject == *s,
        AccessRule::ClientId(c) => p.client_id.as_deref() == Some(c.as_str()),
        AccessRule::Group(g) => p.groups.iter().any(|x| x == g),
        AccessRule::Scope(s) => p.scopes.iter().any(|x| x == s),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn oidc(sub: &str, client: &str, groups: &[&str], scopes: &[&str]) -> Principal {
        Principal {
            method: Method::Oidc,
            subject: sub.into(),
            issuer: Some("https://idp".into()),
            client_id: Some(client.into()),
            user: None,
            agent: None,
            groups: groups.iter().map(|s| s.to_string()).collect(),
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn rules() {
        let p = oidc("svc-a", "ci", &["ml"], &["llm:invoke", "openid"]);
        assert!(permits(None, &p));
        assert!(!permits(Some(&[]), &p));
        assert!(permits(Some(&[AccessRule::Subject("svc-a".into())]), &p));
        assert!(permits(Some(&[AccessRule::ClientId("ci".into())]), &p));
        assert!(permits(Some(&[AccessRule::Group("ml".into())]), &p));
        assert!(permits(Some(&[AccessRule::Scope("llm:invoke".into())]), &p));
        assert!(!permits(
            Some(&[
                AccessRule::Group("ops".into()),
                AccessRule::Scope("admin".into())
            ]),
            &p
        ));
        // An API key rule never matches a token whose subject has the same name.
        assert!(!permits(Some(&[AccessRule::ApiKey("svc-a".into())]), &p));
        let key = Principal {
            method: Method::ApiKey,
            ..oidc("svc-a", "", &[], &[])
        };
        assert!(permits(Some(&[AccessRule::ApiKey("svc-a".into())]), &key));
        assert!(!permits(Some(&[AccessRule::Subject("svc-a".into())]), &key));
    }
}
