//! The per-connection decoder that advances the phases of both directions itself.

use crate::{Decoded, Limits};

use super::head::{op_head, reply_head};
use super::{decode_request, decode_response, Error, Phase, Request, Response};

/// The per-connection decoding state: one per client connection, driven by the engine.
///
/// After a `ConnectRequest` the request side expects session requests; after a
/// `ConnectResponse` the response side expects replies; after a four-letter word both sides
/// carry unframed bytes until the server closes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Connection {
    requests: Phase,
    responses: Phase,
}

impl Default for Connection {
    fn default() -> Self {
        Self::new()
    }
}

impl Connection {
    /// A new connection: both sides expect the handshake.
    pub const fn new() -> Self {
        Connection {
            requests: Phase::Handshake,
            responses: Phase::Handshake,
        }
    }

    /// A connection picked up mid-session (both sides past the handshake).
    pub const fn in_session() -> Self {
        Connection {
            requests: Phase::Session,
            responses: Phase::Session,
        }
    }

    /// What the next client frame is expected to be.
    pub const fn request_phase(&self) -> Phase {
        self.requests
    }

    /// What the next server frame is expected to be.
    pub const fn response_phase(&self) -> Phase {
        self.responses
    }

    /// Decodes one client frame and advances the phase past the handshake.
    pub fn decode_request<'a>(
        &mut self,
        buf: &'a [u8],
        limits: &Limits,
    ) -> Result<Decoded<Request<'a>>, Error> {
        let d = decode_request(buf, self.requests, limits)?;
        match d {
            Decoded::Frame {
                frame: Request::Connect(_),
                ..
            } => self.requests = Phase::Session,
            Decoded::Frame {
                frame: Request::FourLetter(_),
                ..
            } => {
                self.requests = Phase::Raw;
                self.responses = Phase::Raw;
            }
            _ => {}
        }
        Ok(d)
    }

    /// Head mode (a frame too big to hold): decodes a session request from its first bytes,
    /// with `used` the whole frame's length; the handshake and four-letter words must be
    /// whole (they are small), so they decode as [`Connection::decode_request`] does.
    pub fn decode_request_head<'a>(
        &mut self,
        buf: &'a [u8],
        limits: &Limits,
    ) -> Result<Decoded<Request<'a>>, Error> {
        match self.requests {
            Phase::Session => op_head(buf, limits),
            _ => self.decode_request(buf, limits),
        }
    }

    /// Head mode for a server frame (see [`Connection::decode_request_head`]).
    pub fn decode_response_head<'a>(
        &mut self,
        buf: &'a [u8],
        limits: &Limits,
    ) -> Result<Decoded<Response<'a>>, Error> {
        match self.responses {
            Phase::Session => reply_head(buf, limits),
            _ => self.decode_response(buf, limits),
        }
    }

    /// Decodes one server frame and advances the phase past the handshake.
    pub fn decode_response<'a>(
        &mut self,
        buf: &'a [u8],
        limits: &Limits,
    ) -> Result<Decoded<Response<'a>>, Error> {
        let d = decode_response(buf, self.responses, limits)?;
        if let Decoded::Frame {
            frame: Response::Connect(_),
            ..
        } = d
        {
            self.responses = Phase::Session;
        }
        Ok(d)
    }
}
