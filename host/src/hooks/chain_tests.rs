//! The chain's rules, with small hooks written here (the engines are tested on their own).

#![allow(clippy::unwrap_used)]

use super::*;
use crate::hooks::{Description, Hooks};

/// What a test hook does.
#[derive(Clone, Copy)]
enum Behaviour {
    /// Encoding "xor": flips every byte with 0x5a, both ways; passes chunks that start with 0.
    Xor,
    /// Rejects files over 10 bytes.
    SizeLimit,
    /// Aborts on the byte sequence "EVIL".
    Scan,
    /// Replaces bytes although it provides no encoding.
    Rogue,
    /// Its complete hook fails.
    FailingComplete,
}

struct TestHook {
    description: Description,
    behaviour: Behaviour,
    seen: Vec<Vec<u8>>,
}

fn hook(behaviour: Behaviour) -> Box<dyn Hook> {
    let (name, hooks, encoding) = match behaviour {
        Behaviour::Xor => (
            "xor",
            Hooks {
                chunk: true,
                ..Hooks::default()
            },
            Some("xor".to_owned()),
        ),
        Behaviour::SizeLimit => (
            "size-limit",
            Hooks {
                pre_send: true,
                ..Hooks::default()
            },
            None,
        ),
        Behaviour::Scan | Behaviour::Rogue => (
            if matches!(behaviour, Behaviour::Scan) {
                "scan"
            } else {
                "rogue"
            },
            Hooks {
                chunk: true,
                ..Hooks::default()
            },
            None,
        ),
        Behaviour::FailingComplete => (
            "notify",
            Hooks {
                complete: true,
                ..Hooks::default()
            },
            None,
        ),
    };
    Box::new(TestHook {
        description: Description {
            name: name.into(),
            version: "test".into(),
            hooks,
            needs_bytes: true,
            encoding,
        },
        behaviour,
        seen: Vec::new(),
    })
}

impl Hook for TestHook {
    fn describe(&self) -> &Description {
        &self.description
    }

    fn pre_send(&mut self, file: &FileInfo) -> Result<PreSend, HookError> {
        Ok(match self.behaviour {
            Behaviour::SizeLimit if file.size > 10 => PreSend::Reject("over 10 bytes".into()),
            _ => PreSend::Continue,
        })
    }

    fn chunk(&mut self, _: &FileInfo, _: u64, data: &[u8]) -> Result<ChunkAction, HookError> {
        self.seen.push(data.to_vec());
        Ok(match self.behaviour {
            Behaviour::Xor if data.first() == Some(&0) => ChunkAction::Pass,
            Behaviour::Xor => ChunkAction::Replace(data.iter().map(|b| b ^ 0x5a).collect()),
            Behaviour::Scan if data.windows(4).any(|w| w == b"EVIL") => {
                ChunkAction::Abort("found EVIL".into())
            }
            Behaviour::Rogue => ChunkAction::Replace(b"swapped".to_vec()),
            _ => ChunkAction::Pass,
        })
    }

    fn complete(&mut self, _: &FileInfo, _: &Outcome) -> Result<(), HookError> {
        match self.behaviour {
            Behaviour::FailingComplete => Err(HookError {
                owner: "notify".into(),
                reason: "no mail server".into(),
            }),
            _ => Ok(()),
        }
    }
}

fn file(size: u64, side: Side) -> FileInfo {
    FileInfo {
        path: "a/b.txt".into(),
        size,
        side,
    }
}

#[test]
fn an_encoder_encodes_on_send_and_decodes_on_receive_with_inspectors_seeing_plain_bytes() {
    let mut sending = HookChain::new(vec![hook(Behaviour::Scan), hook(Behaviour::Xor)]);
    assert_eq!(sending.encodings(), vec!["xor".to_owned()]);
    let admission = sending.admit(&file(5, Side::Send)).unwrap();
    assert_eq!(admission, Admission::Admit { encoding: 1 });
    let sent = sending
        .send_chunk(&file(5, Side::Send), 0, b"hello", 1)
        .unwrap();
    let Processed::Encoded { data, encoding } = sent else {
        panic!("not encoded: {sent:?}");
    };
    assert_eq!(encoding, 1);
    assert_ne!(data, b"hello");

    let mut receiving = HookChain::new(vec![hook(Behaviour::Scan), hook(Behaviour::Xor)]);
    receiving.check_decoders(&["xor".to_owned()]).unwrap();
    let plain = receiving
        .receive_chunk(&file(5, Side::Receive), 0, &data, encoding)
        .unwrap();
    assert!(matches!(plain, Cow::Owned(_)));
    assert_eq!(&*plain, b"hello");
}

#[test]
fn a_plain_chunk_is_borrowed_not_copied() {
    let mut chain = HookChain::new(vec![hook(Behaviour::Scan)]);
    let data = b"all fine".to_vec();
    let sent = chain.send_chunk(&file(8, Side::Send), 0, &data, 0).unwrap();
    assert_eq!(sent, Processed::Plain);
    let plain = chain
        .receive_chunk(&file(8, Side::Receive), 0, &data, 0)
        .unwrap();
    assert!(matches!(plain, Cow::Borrowed(bytes) if std::ptr::eq(bytes, &data[..])));
}

#[test]
fn an_encoder_may_leave_a_chunk_plain() {
    let mut chain = HookChain::new(vec![hook(Behaviour::Xor)]);
    let sent = chain
        .send_chunk(&file(3, Side::Send), 0, &[0, 1, 2], 1)
        .unwrap();
    assert_eq!(sent, Processed::Plain);
}

#[test]
fn a_receiver_without_the_encoding_refuses_naming_it() {
    let chain = HookChain::new(vec![hook(Behaviour::Scan)]);
    let err = chain.check_decoders(&["xor".to_owned()]).unwrap_err();
    assert!(err.contains("\"xor\"") && err.contains("--plugin"), "{err}");
    let mut chain = HookChain::new(Vec::new());
    assert!(
        chain
            .receive_chunk(&file(3, Side::Receive), 0, &[1, 2, 3], 1)
            .is_err()
    );
}

#[test]
fn rejections_aborts_and_rogue_replacements_name_the_hook() {
    let mut chain = HookChain::new(vec![hook(Behaviour::SizeLimit)]);
    assert_eq!(
        chain.admit(&file(11, Side::Send)).unwrap(),
        Admission::Reject {
            reason: "size-limit: over 10 bytes".into()
        }
    );
    assert_eq!(
        chain.admit(&file(10, Side::Send)).unwrap(),
        Admission::Admit { encoding: 0 }
    );

    let mut chain = HookChain::new(vec![hook(Behaviour::Scan)]);
    let err = chain
        .send_chunk(&file(9, Side::Send), 0, b"an EVIL x", 0)
        .unwrap_err();
    assert_eq!(err.owner, "scan");
    assert!(err.reason.contains("found EVIL"), "{err}");
    let err = chain
        .receive_chunk(&file(9, Side::Receive), 0, b"an EVIL x", 0)
        .unwrap_err();
    assert_eq!(err.owner, "scan");

    let mut chain = HookChain::new(vec![hook(Behaviour::Rogue)]);
    let err = chain
        .send_chunk(&file(3, Side::Send), 0, b"abc", 0)
        .unwrap_err();
    assert_eq!(err.owner, "rogue");
}

#[test]
fn the_receiving_side_never_encodes_and_complete_failures_are_only_reported() {
    let mut chain = HookChain::new(vec![hook(Behaviour::Xor), hook(Behaviour::FailingComplete)]);
    assert_eq!(
        chain.admit(&file(3, Side::Receive)).unwrap(),
        Admission::Admit { encoding: 0 }
    );
    let errors = chain.complete(
        &file(3, Side::Receive),
        &Outcome::Done {
            local_path: "/tmp/x".into(),
        },
    );
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].owner, "notify");
}

#[test]
fn a_complete_hook_that_moves_the_file_tells_the_hooks_after_it_where_it_is() {
    use crate::hooks::{HookFactory, LuaConfig, LuaScript};
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("report.pdf");
    std::fs::write(&file, b"pdf").unwrap();
    let mut grants = LuaConfig::default();
    grants.grants.move_dirs = vec![dir.path().to_path_buf()];
    let mover = LuaScript::from_source(
        "mover.lua",
        "p2p.on('complete', function(f, o) p2p.move(o.local_path, 'pdf') end)",
        grants,
    )
    .unwrap();
    // Reports where it was told the file is, as its error.
    let reporter = LuaScript::from_source(
        "reporter.lua",
        "p2p.on('complete', function(f, o) error('at ' .. o.local_path, 0) end)",
        LuaConfig::default(),
    )
    .unwrap();
    let mut chain = HookChain::new(vec![
        mover.instantiate().unwrap(),
        reporter.instantiate().unwrap(),
    ]);
    let info = FileInfo {
        path: "report.pdf".into(),
        size: 3,
        side: crate::hooks::Side::Receive,
    };
    let failures = chain.complete(
        &info,
        &Outcome::Done {
            local_path: file.display().to_string(),
        },
    );
    let moved = dir.path().join("pdf/report.pdf");
    assert!(moved.is_file());
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert!(
        failures[0]
            .reason
            .ends_with(&format!("at {}", moved.display())),
        "{failures:?}"
    );
}

#[test]
fn routes_narrow_to_the_peers_every_script_names_and_a_rejection_wins() {
    use crate::hooks::{HookFactory, LuaConfig, LuaScript, Route};
    let script = |name: &str, source: &str| {
        LuaScript::from_source(name, source, LuaConfig::default())
            .unwrap()
            .instantiate()
            .unwrap()
    };
    let info = |path: &str| FileInfo {
        path: path.into(),
        size: 1,
        side: crate::hooks::Side::Send,
    };
    let by_type = "p2p.on('pre_send', function(f)
        if f.path:match('%.raw$') then return p2p.route{'nas', 'laptop'} end
        if f.path:match('%.secret$') then return p2p.reject('stays here') end
    end)";
    let no_laptop = "p2p.on('pre_send', function(f)
        if f.path:match('^private/') then return p2p.route{'nas'} end
    end)";
    let mut chain = HookChain::new(vec![
        script("by-type.lua", by_type),
        script("no-laptop.lua", no_laptop),
    ]);
    assert!(chain.routes());
    assert_eq!(chain.route(&info("a.txt")).unwrap(), Route::Default);
    assert_eq!(
        chain.route(&info("a.raw")).unwrap(),
        Route::Only(vec!["nas".into(), "laptop".into()])
    );
    assert_eq!(
        chain.route(&info("private/a.raw")).unwrap(),
        Route::Only(vec!["nas".into()])
    );
    assert_eq!(
        chain.route(&info("a.secret")).unwrap(),
        Route::Reject("by-type: stays here".into())
    );
    assert!(!HookChain::new(Vec::new()).routes());
}
