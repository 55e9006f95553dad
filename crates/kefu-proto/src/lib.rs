//! Generated code for Kefu's protobuf packages (see `proto/`).
#![forbid(unsafe_code)]
#![allow(clippy::all, missing_docs)]

/// Encoded `FileDescriptorSet` of every Kefu proto, for gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/kefu_descriptor.bin"));

pub mod events {
    pub mod v1 {
        tonic::include_proto!("kefu.events.v1");
    }
}
pub mod session {
    pub mod v1 {
        tonic::include_proto!("kefu.session.v1");
    }
}
pub mod translation {
    pub mod v1 {
        tonic::include_proto!("kefu.translation.v1");
    }
}
pub mod intent {
    pub mod v1 {
        tonic::include_proto!("kefu.intent.v1");
    }
}
pub mod assistant {
    pub mod v1 {
        tonic::include_proto!("kefu.assistant.v1");
    }
}
pub mod ticket {
    pub mod v1 {
        tonic::include_proto!("kefu.ticket.v1");
    }
}
pub mod order {
    pub mod v1 {
        tonic::include_proto!("kefu.order.v1");
    }
}
pub mod metrics {
    pub mod v1 {
        tonic::include_proto!("kefu.metrics.v1");
    }
}

pub mod auth {
    pub mod v1 {
        tonic::include_proto!("kefu.auth.v1");
    }
}
pub mod admin {
    pub mod v1 {
        tonic::include_proto!("kefu.admin.v1");
    }
}

pub mod knowledge {
    pub mod v1 {
        tonic::include_proto!("kefu.knowledge.v1");
    }
}

pub mod privacy {
    pub mod v1 {
        tonic::include_proto!("kefu.privacy.v1");
    }
}

pub use prost_types::Timestamp;
