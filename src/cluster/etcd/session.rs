//! etcd's authentication: a user name and password buy a token (`Auth.Authenticate`), sent as
//! the `token` metadata of every request. A token does not last: etcd forgets a simple token
//! after some idle minutes (`--auth-token-ttl`, 5 by default), all of them when authentication
//! is turned off and on again, and a JWT at its expiry. A request refused for its token
//! authenticates again and is sent once more (what etcd's own client does).
//!
//! etcd's errors are told apart by their gRPC code and, where etcd gives several meanings one
//! code, by their message: etcd's client matches the same fixed strings.

use super::EtcdError;
use super::pb::etcdserverpb::AuthenticateRequest;
use super::pb::etcdserverpb::auth_client::AuthClient;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use tonic::metadata::AsciiMetadataValue;
use tonic::transport::Channel;
use tonic::{Code, Status};

/// Wrong password, or no such user: etcd does not say which.
const AUTH_FAILED: &str = "etcdserver: authentication failed, invalid user ID or password";
/// A request without a token, to an etcd with authentication enabled.
const USER_EMPTY: &str = "etcdserver: user name is empty";
/// A token issued before the last change to etcd's users, roles or permissions (etcd 3.4).
const OLD_REVISION: &str = "etcdserver: revision of auth store is old";
const AUTH_NOT_ENABLED: &str = "etcdserver: authentication is not enabled";
/// An unknown or expired token.
const INVALID_TOKEN: &str = "etcdserver: invalid auth token";
const PERMISSION_DENIED: &str = "etcdserver: permission denied";

/// The token one request carries, and which one it is.
// No `Debug`: a token is as good as the password while it lasts.
#[derive(Clone, Default)]
pub(super) struct Token {
    /// `None`: no authentication (none configured, or etcd has it off).
    value: Option<AsciiMetadataValue>,
    /// Counts the tokens obtained. A request refused with token `n` asks for a new one only if
    /// `n` is still current: of several requests refused at once, the first renews it and the
    /// others use the new one.
    generation: u64,
}

impl Token {
    /// `message` as a request that carries the token.
    pub(super) fn request<M>(&self, message: M) -> tonic::Request<M> {
        let mut request = tonic::Request::new(message);
        if let Some(token) = &self.value {
            request.metadata_mut().insert("token", token.clone());
        }
        request
    }

    pub(super) fn generation(&self) -> u64 {
        self.generation
    }
}

/// One user's authentication, shared by every clone of a client.
pub(super) struct Session {
    username: String,
    password: String,
    auth: AuthClient<Channel>,
    /// A tokio mutex, held across the `Authenticate` call on purpose: tasks that need a new
    /// token wait for one authentication instead of each making their own.
    state: tokio::sync::Mutex<State>,
    /// How many authentications have finished (counted under `state`; read before waiting
    /// for it, to know whether one finished meanwhile).
    finished: AtomicU64,
}

#[derive(Default)]
struct State {
    /// `None` before the first authentication.
    token: Option<Token>,
    /// Why the last authentication failed, if it did: given to the tasks that waited for it,
    /// so that while etcd is out of reach they do not each wait out a timeout in turn.
    failure: Option<Status>,
}

impl fmt::Debug for Session {
    // Never the password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// Authenticates on first use, not here.
    pub(super) fn new(username: String, password: String, channel: Channel) -> Session {
        Session {
            username,
            password,
            auth: AuthClient::new(channel),
            state: tokio::sync::Mutex::new(State::default()),
            finished: AtomicU64::new(0),
        }
    }

    pub(super) fn username(&self) -> &str {
        &self.username
    }

    /// The token to send: the current one, or a new one if there is none yet or `refused`
    /// (the generation of a token etcd refused) is still the current one. Fails with the
    /// status of the `Authenticate` call.
    pub(super) async fn token(&self, refused: Option<u64>) -> Result<Token, Status> {
        let finished = self.finished.load(Ordering::Acquire);
        let mut state = self.state.lock().await;
        if let Some(token) = &state.token
            && Some(token.generation) != refused
        {
            return Ok(token.clone());
        }
        if self.finished.load(Ordering::Acquire) != finished
            && let Some(failure) = &state.failure
        {
            return Err(failure.clone());
        }
        let result = self.authenticate().await;
        self.finished.fetch_add(1, Ordering::AcqRel);
        match result {
            Ok(value) => {
                let token = Token {
                    value,
                    generation: state.token.as_ref().map_or(1, |t| t.generation + 1),
                };
                state.token = Some(token.clone());
                state.failure = None;
                Ok(token)
            }
            Err(s) => {
                state.failure = Some(s.clone());
                Err(s)
            }
        }
    }

    async fn authenticate(&self) -> Result<Option<AsciiMetadataValue>, Status> {
        let request = AuthenticateRequest {
            name: self.username.clone(),
            password: self.password.clone(),
        };
        match self.auth.clone().authenticate(request).await {
            Ok(r) => AsciiMetadataValue::try_from(r.into_inner().token)
                .map(Some)
                .map_err(|_| Status::internal("etcd gave a token that is not ASCII")),
            // Requests need no token then (etcd's own client goes on the same way). Should
            // authentication be turned on later, they are refused as "user name is empty",
            // which authenticates again.
            Err(s) if s.message() == AUTH_NOT_ENABLED => Ok(None),
            Err(s) => Err(s),
        }
    }
}

/// Whether a request refused with `s` may pass with a new token: etcd does not know the token
/// (expired, or issued before authentication was turned off and on), got none, or knows it
/// from before a change to its users and roles.
pub(super) fn stale_token(s: &Status) -> bool {
    s.code() == Code::Unauthenticated || s.message() == USER_EMPTY || s.message() == OLD_REVISION
}

/// The refusal a watch was cancelled with as etcd created it, if it was refused for its token
/// or permissions, as the status a request refused alike gets. (etcd 3.4 puts the refusal's
/// text in the cancel reason; before 3.4.10 or so it said "permission denied" for a stale
/// token too.)
pub(super) fn watch_refusal(reason: &str) -> Option<Status> {
    if reason.contains(INVALID_TOKEN) {
        Some(Status::unauthenticated(INVALID_TOKEN))
    } else if reason.contains(USER_EMPTY) {
        Some(Status::invalid_argument(USER_EMPTY))
    } else if reason.contains(OLD_REVISION) {
        Some(Status::invalid_argument(OLD_REVISION))
    } else if reason.contains("permission denied") {
        Some(Status::permission_denied(PERMISSION_DENIED))
    } else {
        None
    }
}

/// The error for status `s` of a request made as `user` (if any): a refusal of who we are or
/// what we asked is [`EtcdError::Auth`], saying what to do about it.
pub(super) fn error(s: Status, user: Option<&str>) -> EtcdError {
    let said = s.message();
    let who = match user {
        Some(u) => format!("etcd user `{u}`"),
        None => "this client (no etcd user configured)".to_string(),
    };
    let advice = if said == AUTH_FAILED {
        match user {
            Some(u) => format!(
                "etcd refused user `{u}`: no such user or a wrong password ({said}); check the \
                 user name and the password in its password file"
            ),
            None => format!("etcd refused the authentication ({said})"),
        }
    } else if s.code() == Code::PermissionDenied {
        format!(
            "{who} may not do this ({said}); grant its role read and write on Meridian's \
             prefix (etcdctl role grant-permission ROLE --prefix=true readwrite PREFIX)"
        )
    } else if said == USER_EMPTY || (s.code() == Code::Unauthenticated && user.is_none()) {
        format!("etcd has authentication enabled ({said}); configure a user and its password file")
    } else if s.code() == Code::Unauthenticated || said == OLD_REVISION {
        format!("etcd refused the token it just gave {who} ({said})")
    } else {
        // A status with a cause is this side's: the connection failed, whatever its code.
        let unreachable = std::error::Error::source(&s).is_some()
            || matches!(
                s.code(),
                Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled
            );
        return if unreachable {
            EtcdError::Unavailable(super::transport_error(&s))
        } else {
            EtcdError::Protocol(format!("{:?}: {said}", s.code()))
        };
    };
    EtcdError::Auth(advice)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[tokio::test]
    async fn tasks_waiting_for_an_authentication_share_its_failure() {
        // A member that takes connections and never answers: each authentication takes the
        // whole timeout.
        let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", silent.local_addr().unwrap());
        let timeout = Duration::from_millis(300);
        let channel = tonic::transport::Endpoint::from_shared(url)
            .unwrap()
            .timeout(timeout)
            .connect_lazy();
        let session = std::sync::Arc::new(Session::new("meridian".into(), "pw".into(), channel));
        let started = Instant::now();
        let tasks: Vec<_> = (0..4)
            .map(|_| {
                let session = session.clone();
                tokio::spawn(async move { session.token(None).await })
            })
            .collect();
        for task in tasks {
            assert!(task.await.unwrap().is_err());
        }
        // One attempt, not four in turn.
        assert_eq!(session.finished.load(Ordering::Acquire), 1);
        assert!(started.elapsed() < 3 * timeout, "took {:?}", started.elapsed());
        // A later call tries again.
        assert!(session.token(None).await.is_err());
        assert_eq!(session.finished.load(Ordering::Acquire), 2);
    }

    #[test]
    fn refusals_are_auth_errors_that_say_what_to_do() {
        let e = error(Status::invalid_argument(AUTH_FAILED), Some("meridian"));
        assert!(
            matches!(&e, EtcdError::Auth(m) if m.contains("`meridian`") && m.contains("password")),
            "{e}"
        );
        let e = error(Status::permission_denied(PERMISSION_DENIED), Some("meridian"));
        assert!(matches!(&e, EtcdError::Auth(m) if m.contains("grant")), "{e}");
        let e = error(Status::invalid_argument(USER_EMPTY), None);
        assert!(
            matches!(&e, EtcdError::Auth(m) if m.contains("configure a user")),
            "{e}"
        );
        // Other failures keep their kind.
        let e = error(Status::unavailable("etcdserver: no leader"), Some("meridian"));
        assert!(matches!(e, EtcdError::Unavailable(_)), "{e}");
        let e = error(
            Status::invalid_argument("etcdserver: too many operations in txn request"),
            Some("meridian"),
        );
        assert!(matches!(e, EtcdError::Protocol(_)), "{e}");
    }

    #[test]
    fn a_stale_token_is_told_from_a_refusal() {
        assert!(stale_token(&Status::unauthenticated(INVALID_TOKEN)));
        assert!(stale_token(&Status::invalid_argument(USER_EMPTY)));
        assert!(stale_token(&Status::invalid_argument(OLD_REVISION)));
        assert!(!stale_token(&Status::invalid_argument(AUTH_FAILED)));
        assert!(!stale_token(&Status::permission_denied(PERMISSION_DENIED)));
        let refusal = |reason| watch_refusal(reason).map(|s| s.code());
        assert_eq!(
            refusal("rpc error: code = Unauthenticated desc = etcdserver: invalid auth token"),
            Some(Code::Unauthenticated)
        );
        assert_eq!(
            refusal("etcdserver: permission denied"),
            Some(Code::PermissionDenied)
        );
        assert_eq!(
            refusal("etcdserver: mvcc: required revision has been compacted"),
            None
        );
    }
}
