//! The URLs of etcd's cluster flags (`--listen-client-urls`,
//! `--initial-advertise-peer-urls`, `--initial-cluster`, ...): parsed, checked
//! and written back in one canonical form `scheme://host:port`, so that every
//! member compares and hashes the same text. This module only parses; it never
//! resolves names or opens sockets.

use std::fmt;
use std::net::IpAddr;

/// Why a URL given to a flag was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error("`{url}` is not a URL ({reason}); write it as http://host:port")]
    Malformed { url: String, reason: String },
    #[error("`{url}` uses scheme `{scheme}`; only http and https are served")]
    UnsupportedScheme { url: String, scheme: String },
    #[error("`{url}` has no host; write it as http://host:port")]
    MissingHost { url: String },
    #[error("`{url}` has no port; write it as http://host:port")]
    MissingPort { url: String },
    #[error("`{url}` has a path, query or user part; give only scheme://host:port")]
    ExtraParts { url: String },
    #[error("`{url}` cannot be bound: the host must be an IP address or `localhost`")]
    NotBindable { url: String },
}

/// The two schemes a member serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scheme {
    Http,
    Https,
}

impl Scheme {
    fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }
}

/// A checked `scheme://host:port` URL. IPv6 hosts keep their brackets.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Url {
    scheme: Scheme,
    host: String,
    port: u16,
}

impl Url {
    /// Parses a URL that names a host and port (advertised URLs, cluster members).
    pub fn parse(text: &str) -> Result<Url, UrlError> {
        let malformed = |reason: String| UrlError::Malformed {
            url: text.to_owned(),
            reason,
        };
        let uri: http::Uri = text
            .parse()
            .map_err(|error: http::uri::InvalidUri| malformed(error.to_string()))?;
        let scheme = match uri.scheme_str() {
            Some("http") => Scheme::Http,
            Some("https") => Scheme::Https,
            Some(other) => {
                return Err(UrlError::UnsupportedScheme {
                    url: text.to_owned(),
                    scheme: other.to_owned(),
                })
            }
            None => return Err(malformed("no scheme".to_owned())),
        };
        let authority = uri.authority().ok_or_else(|| UrlError::MissingHost {
            url: text.to_owned(),
        })?;
        let has_extra_parts = authority.as_str().contains('@')
            || uri.query().is_some()
            || !matches!(uri.path(), "" | "/");
        if has_extra_parts {
            return Err(UrlError::ExtraParts {
                url: text.to_owned(),
            });
        }
        if authority.host().is_empty() {
            return Err(UrlError::MissingHost {
                url: text.to_owned(),
            });
        }
        let port = authority.port_u16().ok_or_else(|| UrlError::MissingPort {
            url: text.to_owned(),
        })?;
        Ok(Url {
            scheme,
            host: authority.host().to_owned(),
            port,
        })
    }

    /// Parses a URL to listen on: as [`Url::parse`], and the host must be an IP
    /// address or `localhost`, since a member binds sockets, not names.
    pub fn parse_bindable(text: &str) -> Result<Url, UrlError> {
        let url = Url::parse(text)?;
        let unbracketed = url.host.trim_start_matches('[').trim_end_matches(']');
        if url.host != "localhost" && unbracketed.parse::<IpAddr>().is_err() {
            return Err(UrlError::NotBindable {
                url: text.to_owned(),
            });
        }
        Ok(url)
    }

    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// The host as written, IPv6 addresses in brackets.
    pub fn host(&self) -> &str {
        &self.host
    }

    pub fn port(&self) -> u16 {
        self.port
    }
}

impl fmt::Display for Url {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            formatter,
            "{}://{}:{}",
            self.scheme.as_str(),
            self.host,
            self.port
        )
    }
}

#[cfg(test)]
mod tests {
    use super::{Scheme, Url, UrlError};

    #[test]
    fn parses_and_writes_back_the_canonical_form() {
        let url = Url::parse("http://localhost:2380").unwrap();
        assert_eq!(url.scheme(), Scheme::Http);
        assert_eq!(url.host(), "localhost");
        assert_eq!(url.port(), 2380);
        assert_eq!(url.to_string(), "http://localhost:2380");
        assert_eq!(
            Url::parse("https://10.0.0.1:2379/").unwrap().to_string(),
            "https://10.0.0.1:2379"
        );
        assert_eq!(
            Url::parse("http://[::1]:2379").unwrap().to_string(),
            "http://[::1]:2379"
        );
    }

    #[test]
    fn rejects_text_that_is_no_url() {
        assert!(matches!(
            Url::parse("http://local host:2380"),
            Err(UrlError::Malformed { .. })
        ));
        assert!(matches!(
            Url::parse("localhost:2380"),
            Err(UrlError::Malformed { .. })
        ));
        assert!(matches!(Url::parse(""), Err(UrlError::Malformed { .. })));
    }

    #[test]
    fn rejects_other_schemes() {
        assert_eq!(
            Url::parse("unix://localhost:2380"),
            Err(UrlError::UnsupportedScheme {
                url: "unix://localhost:2380".to_owned(),
                scheme: "unix".to_owned()
            })
        );
    }

    #[test]
    fn rejects_a_url_without_port() {
        assert_eq!(
            Url::parse("http://localhost"),
            Err(UrlError::MissingPort {
                url: "http://localhost".to_owned()
            })
        );
    }

    #[test]
    fn rejects_a_url_without_host() {
        assert!(matches!(
            Url::parse("http://:2380"),
            Err(UrlError::MissingHost { .. })
        ));
    }

    #[test]
    fn rejects_paths_queries_and_users() {
        for text in [
            "http://localhost:2380/v3",
            "http://localhost:2380?a=b",
            "http://user@localhost:2380",
        ] {
            assert_eq!(
                Url::parse(text),
                Err(UrlError::ExtraParts {
                    url: text.to_owned()
                }),
                "{text}"
            );
        }
    }

    #[test]
    fn bindable_urls_need_an_ip_or_localhost() {
        assert!(Url::parse_bindable("http://localhost:2379").is_ok());
        assert!(Url::parse_bindable("http://0.0.0.0:2379").is_ok());
        assert!(Url::parse_bindable("http://[::]:2379").is_ok());
        assert_eq!(
            Url::parse_bindable("http://example.com:2379"),
            Err(UrlError::NotBindable {
                url: "http://example.com:2379".to_owned()
            })
        );
        assert!(Url::parse("http://example.com:2379").is_ok());
    }
}
