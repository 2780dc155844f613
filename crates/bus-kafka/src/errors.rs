//! Kafka's errors as the bus's: which are worth trying again and which never will be.

use orchestrator_bus::BusError;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};

pub(crate) fn backend(e: impl std::fmt::Display) -> BusError {
    BusError::Backend(e.to_string())
}

/// Whether an error is final for the events sent: they, or the configuration, are wrong, and
/// sending them again cannot help. Any other error (the broker down, slow, moving a leader, or
/// failing in a way it does not explain) may go away by itself; a producer left unusable
/// (librdkafka's fatal idempotence errors) is replaced before the next try.
pub(crate) fn is_permanent(code: RDKafkaErrorCode) -> bool {
    use RDKafkaErrorCode::*;
    matches!(
        code,
        InvalidMessage
            | InvalidMessageSize
            | MessageSizeTooLarge
            | MessageBatchTooLarge
            | InvalidRecord
            | InvalidTimestamp
            | InvalidTopic
            | InvalidRequiredAcks
            | InvalidConfig
            | InvalidArgument
            | InvalidType
            | BadMessage
            | BadCompression
            | UnsupportedCompressionType
            | UnsupportedVersion
            | UnsupportedForMessageFormat
            | UnsupportedFeature
            | NotImplemented
            | PolicyViolation
            | TopicAuthorizationFailed
            | ClusterAuthorizationFailed
            | SaslAuthenticationFailed
            | UnsupportedSASLMechanism
            | Authentication
            | KeySerialization
            | ValueSerialization
    )
}

/// Whether `e` says the message is larger than the producer or the broker takes: sending it
/// again cannot help, but the other events of the publish are not concerned.
pub(crate) fn is_too_large(e: &KafkaError) -> bool {
    use RDKafkaErrorCode::*;
    matches!(
        e.rdkafka_error_code(),
        Some(MessageSizeTooLarge | InvalidMessageSize | MessageBatchTooLarge)
    )
}

pub(crate) fn too_large_reason(e: &KafkaError, size: usize) -> String {
    format!(
        "the message ({size} bytes) is more than the bus's message limit ({e}); raise message.max.bytes in KAFKA_PROPERTIES and on the broker, or lower MAX_OBJECT_BYTES"
    )
}

/// A Kafka error as a bus error: [`BusError::Unavailable`] when trying again may succeed.
pub(crate) fn classify(e: &KafkaError) -> BusError {
    match e.rdkafka_error_code() {
        Some(code) if is_permanent(code) => BusError::Backend(e.to_string()),
        _ => BusError::Unavailable(e.to_string()),
    }
}
