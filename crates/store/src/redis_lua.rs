//! What the Redis store sends besides plain commands: the writer lease's Lua scripts (take,
//! renew, give up, and a batch fenced by the writer's epoch), and how a Redis error and URL are
//! reported.

use super::StoreError;

/// Takes the lease if free: returns {epoch, ""} or {0, current holder}.
pub(crate) const ACQUIRE: &str = r"
local cur = redis.call('GET', KEYS[1])
if cur and cur ~= ARGV[3] then return {0, cur} end
local e = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], ARGV[1] .. ' ' .. e, 'PX', ARGV[2])
return {e, ''}
";

/// Extends the lease if this holder still has it.
pub(crate) const RENEW: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
";

/// Gives the lease up if this holder still has it.
pub(crate) const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
";

/// A batch under fencing: ARGV = epoch, then per command its argument count and arguments.
pub(crate) const FENCED_BATCH: &str = r"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return redis.error_reply('FENCED writer epoch is now ' .. tostring(redis.call('GET', KEYS[1])))
end
local i = 2
while i <= #ARGV do
  local n = tonumber(ARGV[i])
  redis.call(unpack(ARGV, i + 1, i + n))
  i = i + n + 1
end
return 1
";

/// A Redis error as the store reports it: transient when the server is unreachable, restarting
/// or loading its data.
pub(crate) fn backend_error(url: &str, e: redis::RedisError) -> StoreError {
    let transient = e.is_io_error()
        || e.is_timeout()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || matches!(e.retry_method(), redis::RetryMethod::WaitAndRetry);
    StoreError::Backend {
        store: url.to_string(),
        message: e.to_string(),
        transient,
    }
}

/// A Redis error of a write fenced by this writer's epoch (`fence`): `Fenced` when a script
/// refused it for a newer writer's, else as [`backend_error`].
pub(crate) fn write_error(url: &str, fence: Option<u64>, e: redis::RedisError) -> StoreError {
    match fence {
        Some(ours) if e.to_string().contains("FENCED") => StoreError::Fenced { ours },
        _ => backend_error(url, e),
    }
}

/// The URL with its password (if any) replaced by `***`.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            let user = userinfo.split(':').next().unwrap_or("");
            let shown = if userinfo.contains(':') {
                format!("{user}:***")
            } else {
                "***".to_string()
            };
            format!("{}{}{}", &url[..scheme + 3], shown, &url[at..])
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn passwords_are_hidden() {
        assert_eq!(
            redact_url("redis://:s3cret@cache:6379/0"),
            "redis://:***@cache:6379/0"
        );
        assert_eq!(
            redact_url("rediss://app:s3cret@cache:6380"),
            "rediss://app:***@cache:6380"
        );
        assert_eq!(
            redact_url("redis://127.0.0.1:6379"),
            "redis://127.0.0.1:6379"
        );
    }
}
