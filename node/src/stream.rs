//! Streams and notifications.

use crate::data::*;
use crate::database::*;
use crate::error::*;
use crate::handles::*;
use crate::task::*;
use honker_core::wake::wait;
use napi_derive::napi;
use std::sync::{Arc, Mutex};

#[napi]
impl NativeDatabase {
    // -- streams, notify --

    #[napi(
        ts_generic_types = "S extends boolean",
        ts_return_type = "S extends true ? number : Promise<number>"
    )]
    pub fn publish(
        &self,
        #[napi(ts_arg_type = "S")] sync: bool,
        stream: String,
        payload: String,
        key: Option<String>,
        tx: Option<&NativeTx>,
    ) -> Result<Run<i64>> {
        self.run(sync, tx, move |o| {
            o.publish(&stream, key.as_deref(), &payload)
        })
    }

    #[napi(
        ts_generic_types = "S extends boolean",
        ts_return_type = "S extends true ? EventData[] : Promise<EventData[]>"
    )]
    pub fn read_since(
        &self,
        #[napi(ts_arg_type = "S")] sync: bool,
        stream: String,
        offset: f64,
        limit: f64,
    ) -> Result<Run<Vec<EventData>>> {
        let offset = whole("offset", offset)?;
        let limit = count("limit", limit)?;
        self.run(sync, None, move |o| {
            Ok(o.read_since(&stream, offset, limit)?
                .into_iter()
                .map(EventData::from)
                .collect())
        })
    }

    #[napi(
        ts_generic_types = "S extends boolean",
        ts_return_type = "S extends true ? boolean : Promise<boolean>"
    )]
    pub fn save_offset(
        &self,
        #[napi(ts_arg_type = "S")] sync: bool,
        stream: String,
        consumer: String,
        offset: f64,
        tx: Option<&NativeTx>,
    ) -> Result<Run<bool>> {
        let offset = whole("offset", offset)?;
        self.run(sync, tx, move |o| o.save_offset(&stream, &consumer, offset))
    }

    #[napi(
        ts_generic_types = "S extends boolean",
        ts_return_type = "S extends true ? number : Promise<number>"
    )]
    pub fn get_offset(
        &self,
        #[napi(ts_arg_type = "S")] sync: bool,
        stream: String,
        consumer: String,
    ) -> Result<Run<i64>> {
        self.run(sync, None, move |o| o.get_offset(&stream, &consumer))
    }

    /// The newest event's offset (0 if the stream is empty).
    #[napi(
        ts_generic_types = "S extends boolean",
        ts_return_type = "S extends true ? number : Promise<number>"
    )]
    pub fn last_offset(
        &self,
        #[napi(ts_arg_type = "S")] sync: bool,
        stream: String,
    ) -> Result<Run<i64>> {
        self.run(sync, None, move |o| o.last_offset(&stream))
    }

    /// Stores `stream`'s retention (neither limit: keep everything).
    #[napi(
        ts_generic_types = "S extends boolean",
        ts_return_type = "S extends true ? void : Promise<void>"
    )]
    pub fn set_retention(
        &self,
        #[napi(ts_arg_type = "S")] sync: bool,
        stream: String,
        retention: Option<RetentionData>,
    ) -> Result<Run<()>> {
        let r = retention_in(retention)?;
        self.run(sync, None, move |o| o.set_retention(&stream, r))
    }

    /// `stream`'s stored retention.
    #[napi(
        ts_generic_types = "S extends boolean",
        ts_return_type = "S extends true ? RetentionData : Promise<RetentionData>"
    )]
    pub fn retention(
        &self,
        #[napi(ts_arg_type = "S")] sync: bool,
        stream: String,
    ) -> Result<Run<RetentionData>> {
        self.run(sync, None, move |o| o.retention(&stream).map(retention_out))
    }

    /// Applies `stream`'s retention now; returns how many events were removed.
    #[napi(ts_return_type = "Promise<number>")]
    pub fn prune(&self, stream: String) -> AsyncOp<i64> {
        self.later(None, move |o| Ok(o.prune_stream(&stream)? as i64))
    }

    /// A cursor at `consumer`'s saved offset.
    #[napi(ts_return_type = "Promise<NativeCursor>")]
    pub fn cursor(&self, stream: String, consumer: String) -> AsyncOp<NativeCursor> {
        let db = self.db.clone();
        let by = acting();
        spawn(move || {
            let cursor = wait::StreamCursor::open(&db, by.caller(), &stream, &consumer)?;
            Ok(NativeCursor {
                db,
                cursor: Arc::new(Mutex::new(cursor)),
            })
        })
    }

    #[napi(
        ts_generic_types = "S extends boolean",
        ts_return_type = "S extends true ? number : Promise<number>"
    )]
    pub fn notify(
        &self,
        #[napi(ts_arg_type = "S")] sync: bool,
        channel: String,
        payload: String,
        tx: Option<&NativeTx>,
    ) -> Result<Run<i64>> {
        self.run(sync, tx, move |o| o.notify(&channel, &payload))
    }

    /// Starts listening: notifications committed from now on.
    #[napi]
    pub fn listen(&self, channel: String) -> Result<NativeListener> {
        let queue = honker_core::wake::listen(&self.db, &channel).map_err(to_js)?;
        Ok(NativeListener {
            db: self.db.clone(),
            queue,
        })
    }
}
