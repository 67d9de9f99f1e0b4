//! The hooks of one transfer, run in the order the operator listed them, with the rules that tie
//! them together: which hook encodes a file, who may replace bytes, what a rejection means on each
//! side, and that a complete hook's failure is reported, not fatal. Sans-IO: the caller feeds it
//! files and chunks and does what it says.

use std::borrow::Cow;

use super::{ChunkAction, FileInfo, Hook, HookError, Outcome, PreSend, Side};

/// A chunk after the sending side's hooks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Processed {
    /// Send the chunk's own bytes, in no encoding (byte 0): the file has no encoder, or its
    /// encoder left this chunk plain.
    Plain,
    /// Send these bytes instead.
    Encoded {
        /// The encoded bytes.
        data: Vec<u8>,
        /// The encoding byte for the chunk frame: the chain's `n`-th encoding, as listed by
        /// [`HookChain::encodings`].
        encoding: u8,
    },
}

/// What the pre-send hooks decided for a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// Take it; chunks are encoded with this encoding byte (0: none).
    Admit {
        /// The encoding byte its chunks get on the sending side.
        encoding: u8,
    },
    /// Leave it out (sender) or refuse the offer (receiver).
    Reject {
        /// The hook's name and its reason.
        reason: String,
    },
}

/// What the pre-send hooks say about where a file goes (daemon mode).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// Nothing: the folder's and the rules' peers.
    Default,
    /// Only these named peers (and the rules' peers).
    Only(Vec<String>),
    /// Nowhere, for this reason (the hook's name first).
    Reject(String),
}

/// The hooks of one transfer, in order.
#[derive(Debug, Default)]
pub struct HookChain {
    hooks: Vec<Box<dyn Hook>>,
}

impl HookChain {
    /// A chain of `hooks`, in the order given.
    pub fn new(hooks: Vec<Box<dyn Hook>>) -> Self {
        Self { hooks }
    }

    /// No hooks at all: the transfer pays nothing for them.
    pub fn is_empty(&self) -> bool {
        self.hooks.is_empty()
    }

    /// The encodings these hooks provide, in chain order: encoding byte `n` is the `n`-th
    /// (1-based). The sender lists them in its offer; the receiver must provide each one used.
    pub fn encodings(&self) -> Vec<String> {
        self.hooks
            .iter()
            .filter_map(|h| h.describe().encoding.clone())
            .collect()
    }

    /// The index in the chain of the hook providing encoding byte `encoding`.
    fn encoder(&self, encoding: u8) -> Option<usize> {
        let wanted = usize::from(encoding).checked_sub(1)?;
        self.hooks
            .iter()
            .enumerate()
            .filter(|(_, h)| h.describe().encoding.is_some())
            .nth(wanted)
            .map(|(i, _)| i)
    }

    /// Checks that this chain can decode every encoding an offer uses: `Err` names the first one
    /// missing.
    pub fn check_decoders(&self, offered: &[String]) -> Result<(), String> {
        let have = self.encodings();
        match offered.iter().find(|e| !have.contains(e)) {
            None => Ok(()),
            Some(missing) => Err(format!(
                "this transfer is encoded with {missing:?}: add the plugin that provides it \
                 (--plugin FILE.wasm) and receive again"
            )),
        }
    }

    /// Runs the pre-send hooks on `file`, in order; the first rejection wins. On the sending
    /// side, the first hook with an encoding that asks for it (or has no pre-send hook at all)
    /// encodes the file.
    pub fn admit(&mut self, file: &FileInfo) -> Result<Admission, HookError> {
        let mut encoding = 0u8;
        let mut encoders = 0u8;
        for hook in &mut self.hooks {
            let describes = hook.describe().clone();
            let provides = describes.encoding.is_some();
            if provides {
                encoders = encoders.saturating_add(1);
            }
            let decision = if describes.hooks.pre_send {
                hook.pre_send(file)?
            } else if provides {
                PreSend::Encode
            } else {
                PreSend::Continue
            };
            match decision {
                PreSend::Reject(reason) => {
                    return Ok(Admission::Reject {
                        reason: format!("{}: {reason}", describes.name),
                    });
                }
                PreSend::Encode if provides && encoding == 0 && file.side == Side::Send => {
                    encoding = encoders;
                }
                PreSend::Encode | PreSend::Continue | PreSend::Route(_) => {}
            }
        }
        Ok(Admission::Admit { encoding })
    }

    /// Where a file should go, in daemon mode: what the pre-send hooks say about it before it is
    /// queued. A rejection wins; several routes narrow to the peers they all name.
    pub fn route(&mut self, file: &FileInfo) -> Result<Route, HookError> {
        let mut only: Option<Vec<String>> = None;
        for hook in &mut self.hooks {
            if !hook.describe().hooks.pre_send {
                continue;
            }
            match hook.pre_send(file)? {
                PreSend::Reject(reason) => {
                    return Ok(Route::Reject(format!("{}: {reason}", hook.describe().name)));
                }
                PreSend::Route(peers) => {
                    only = Some(match only {
                        Some(before) => before.into_iter().filter(|p| peers.contains(p)).collect(),
                        None => peers,
                    });
                }
                PreSend::Encode | PreSend::Continue => {}
            }
        }
        Ok(only.map_or(Route::Default, Route::Only))
    }

    /// Whether any hook has a pre-send hook (so [`HookChain::route`] can say anything).
    pub fn routes(&self) -> bool {
        self.hooks.iter().any(|h| h.describe().hooks.pre_send)
    }

    /// Runs the chunk hooks on the sending side: inspectors see the plain bytes, then the file's
    /// encoder (if any) encodes them. A hook without an encoding may not replace bytes.
    ///
    /// The chunk is borrowed, not copied: only an encoder's output is new bytes, so a chunk that
    /// stays plain can be sent from the buffer it was read into.
    pub fn send_chunk(
        &mut self,
        file: &FileInfo,
        offset: u64,
        data: &[u8],
        encoding: u8,
    ) -> Result<Processed, HookError> {
        let encoder = self.encoder(encoding);
        for (index, hook) in self.hooks.iter_mut().enumerate() {
            if !hook.describe().hooks.chunk || Some(index) == encoder {
                continue;
            }
            inspect(hook.as_mut(), file, offset, data)?;
        }
        let Some(index) = encoder else {
            return Ok(Processed::Plain);
        };
        let hook = &mut self.hooks[index];
        match hook.chunk(file, offset, data)? {
            ChunkAction::Replace(encoded) => Ok(Processed::Encoded {
                data: encoded,
                encoding,
            }),
            // The encoder may leave a chunk plain, e.g. one that would not shrink.
            ChunkAction::Pass => Ok(Processed::Plain),
            ChunkAction::Abort(reason) => Err(abort(hook.as_ref(), reason)),
        }
    }

    /// Runs the chunk hooks on the receiving side: the chunk's encoder decodes it first, then the
    /// inspectors see the plain bytes. Returns the plain bytes: the chunk itself, borrowed, if it
    /// was in no encoding, else what its encoder decoded.
    pub fn receive_chunk<'a>(
        &mut self,
        file: &FileInfo,
        offset: u64,
        data: &'a [u8],
        encoding: u8,
    ) -> Result<Cow<'a, [u8]>, HookError> {
        let decoder = match encoding {
            0 => None,
            byte => Some(self.encoder(byte).ok_or_else(|| HookError {
                owner: "p2phost".into(),
                reason: format!("a chunk in encoding {byte}, which no plugin here provides"),
            })?),
        };
        let plain = match decoder {
            None => Cow::Borrowed(data),
            Some(index) => {
                let hook = &mut self.hooks[index];
                match hook.chunk(file, offset, data)? {
                    ChunkAction::Replace(decoded) => Cow::Owned(decoded),
                    ChunkAction::Pass => {
                        return Err(HookError {
                            owner: hook.describe().name.clone(),
                            reason: "did not decode a chunk in its own encoding".into(),
                        });
                    }
                    ChunkAction::Abort(reason) => return Err(abort(hook.as_ref(), reason)),
                }
            }
        };
        for (index, hook) in self.hooks.iter_mut().enumerate() {
            if !hook.describe().hooks.chunk || Some(index) == decoder {
                continue;
            }
            // Encoders only decode their own chunks; on plain chunks they have nothing to do.
            if hook.describe().encoding.is_some() {
                continue;
            }
            inspect(hook.as_mut(), file, offset, &plain)?;
        }
        Ok(plain)
    }

    /// Runs the complete hooks; their failures are returned for reporting, not raised. A hook
    /// that moved the file (a script's `p2p.move`) tells the hooks after it where it is now.
    pub fn complete(&mut self, file: &FileInfo, outcome: &Outcome) -> Vec<HookError> {
        let mut outcome = outcome.clone();
        let mut failures = Vec::new();
        for hook in self
            .hooks
            .iter_mut()
            .filter(|h| h.describe().hooks.complete)
        {
            if let Err(e) = hook.complete(file, &outcome) {
                failures.push(e);
            }
            if let (Some(local_path), Outcome::Done { .. }) = (hook.moved_to(), &outcome) {
                outcome = Outcome::Done { local_path };
            }
        }
        failures
    }
}

/// A chunk hook that may look but not change the bytes.
fn inspect(
    hook: &mut dyn Hook,
    file: &FileInfo,
    offset: u64,
    data: &[u8],
) -> Result<(), HookError> {
    match hook.chunk(file, offset, data)? {
        ChunkAction::Pass => Ok(()),
        ChunkAction::Abort(reason) => Err(abort(hook, reason)),
        ChunkAction::Replace(_) => Err(HookError {
            owner: hook.describe().name.clone(),
            reason: "replaced a chunk's bytes without providing an encoding".into(),
        }),
    }
}

fn abort(hook: &dyn Hook, reason: String) -> HookError {
    HookError {
        owner: hook.describe().name.clone(),
        reason: format!("aborted the transfer: {reason}"),
    }
}

#[cfg(test)]
#[path = "chain_tests.rs"]
mod chain_tests;
