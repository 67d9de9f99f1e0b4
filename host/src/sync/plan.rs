//! Which peers get a file: the folder's peers and the matching rules' peers, never the peer it
//! came from, and nobody for a folder that only receives. Decided without I/O.

use std::collections::BTreeSet;

use super::Glob;
use crate::config::{Config, FolderMode};
use crate::identity::PeerId;

/// One sync folder, as routing sees it.
#[derive(Debug, Clone)]
pub struct FolderRoute {
    /// The folder's id.
    pub id: String,
    /// Which way it syncs.
    pub mode: FolderMode,
    /// The peers it syncs with.
    pub peers: Vec<PeerId>,
}

/// The routing of every folder, from the config.
#[derive(Debug, Clone)]
pub struct Router {
    folders: Vec<FolderRoute>,
    rules: Vec<(Glob, Vec<PeerId>)>,
    /// Names of the trusted peers, for logs and status.
    names: Vec<(PeerId, String)>,
}

impl Router {
    /// The routes the config describes. Peer names in folders and rules are checked by the
    /// config already; an unknown one here is skipped.
    pub fn new(config: &Config) -> Self {
        let id_of = |name: &String| config.peers.iter().find(|p| &p.name == name).map(|p| p.id);
        Self {
            folders: config
                .folders
                .iter()
                .map(|f| FolderRoute {
                    id: f.id.clone(),
                    mode: f.mode,
                    peers: f.peers.iter().filter_map(id_of).collect(),
                })
                .collect(),
            rules: config
                .rules
                .iter()
                .map(|r| (r.pattern.clone(), r.to.iter().filter_map(id_of).collect()))
                .collect(),
            names: config
                .peers
                .iter()
                .map(|p| (p.id, p.name.clone()))
                .collect(),
        }
    }

    /// The folders, in config order.
    pub fn folders(&self) -> &[FolderRoute] {
        &self.folders
    }

    /// The index of the folder with this id.
    pub fn folder_index(&self, id: &str) -> Option<usize> {
        self.folders.iter().position(|f| f.id == id)
    }

    /// A peer's name in the config.
    pub fn name_of(&self, peer: &PeerId) -> Option<&str> {
        self.names
            .iter()
            .find(|(id, _)| id == peer)
            .map(|(_, name)| name.as_str())
    }

    /// Who gets `path` of folder `folder` now that it changed: the folder's peers and the peers
    /// of every rule that matches, except `origin` (the peer it came from, if it came from one),
    /// in a stable order. Nobody when the folder does not send.
    pub fn destinations(&self, folder: usize, path: &str, origin: Option<&PeerId>) -> Vec<PeerId> {
        self.routed(folder, path, origin, None)
    }

    /// [`Router::destinations`], with a script's route: `only` (peer names) replaces the
    /// folder's peers; the rules' peers still apply. Names of peers not in the config are left
    /// out.
    pub fn routed(
        &self,
        folder: usize,
        path: &str,
        origin: Option<&PeerId>,
        only: Option<&[String]>,
    ) -> Vec<PeerId> {
        let Some(route) = self.folders.get(folder) else {
            return Vec::new();
        };
        if !route.mode.sends() {
            return Vec::new();
        }
        let mut to: BTreeSet<PeerId> = match only {
            Some(names) => self
                .names
                .iter()
                .filter(|(_, name)| names.contains(name))
                .map(|(id, _)| *id)
                .collect(),
            None => route.peers.iter().copied().collect(),
        };
        for (pattern, peers) in &self.rules {
            if pattern.matches(path) {
                to.extend(peers.iter().copied());
            }
        }
        if let Some(origin) = origin {
            to.remove(origin);
        }
        to.into_iter().collect()
    }

    /// Whether `peer` may put files into folder `folder`: the folder receives, and lists the
    /// peer or has a rule that sends to it (a rule's peer syncs the folder too).
    pub fn accepts_from(&self, folder: usize, peer: &PeerId) -> bool {
        let Some(route) = self.folders.get(folder) else {
            return false;
        };
        route.mode.receives()
            && (route.peers.contains(peer)
                || self.rules.iter().any(|(_, peers)| peers.contains(peer)))
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn id(seed: u8) -> PeerId {
        PeerId::of_certificate(&[seed; 64])
    }

    fn router() -> Router {
        let text = format!(
            r#"
[[peers]]
name = "laptop"
id = "{}"
[[peers]]
name = "nas"
id = "{}"
[[peers]]
name = "phone"
id = "{}"

[[folders]]
path = "/s/photos"
peers = ["laptop", "phone"]

[[folders]]
path = "/s/outbox"
peers = ["laptop"]
mode = "send"

[[folders]]
path = "/s/inbox"
peers = ["laptop"]
mode = "receive"

[[rules]]
match = "*.raw"
to = ["nas"]
"#,
            id(1),
            id(2),
            id(3)
        );
        let config =
            Config::from_toml(&text, Path::new("/s/share.toml")).unwrap_or_else(|e| panic!("{e}"));
        Router::new(&config)
    }

    #[test]
    fn a_file_goes_to_the_folders_peers_and_the_rules_peers() {
        let router = router();
        let mut expected = vec![id(1), id(3)];
        expected.sort();
        assert_eq!(router.destinations(0, "2026/a.jpg", None), expected);
        let mut with_nas = vec![id(1), id(2), id(3)];
        with_nas.sort();
        assert_eq!(router.destinations(0, "2026/a.raw", None), with_nas);
        assert_eq!(router.name_of(&id(2)), Some("nas"));
    }

    #[test]
    fn a_scripts_route_replaces_the_folders_peers_and_the_rules_still_apply() {
        let router = router();
        let only_phone = ["phone".to_owned(), "stranger".to_owned()];
        assert_eq!(
            router.routed(0, "a.jpg", None, Some(&only_phone)),
            vec![id(3)]
        );
        let mut phone_and_nas = vec![id(2), id(3)];
        phone_and_nas.sort();
        assert_eq!(
            router.routed(0, "a.raw", None, Some(&only_phone)),
            phone_and_nas
        );
        assert!(router.routed(0, "a.jpg", None, Some(&[])).is_empty());
        assert!(
            router
                .routed(2, "a.jpg", None, Some(&only_phone))
                .is_empty()
        );
    }

    #[test]
    fn never_back_to_where_it_came_from() {
        let router = router();
        assert_eq!(router.destinations(0, "a.jpg", Some(&id(1))), vec![id(3)]);
        assert!(
            !router
                .destinations(1, "a.txt", Some(&id(1)))
                .contains(&id(1))
        );
    }

    #[test]
    fn a_receive_only_folder_sends_nothing_and_a_send_only_one_accepts_nothing() {
        let router = router();
        assert!(router.destinations(2, "a.jpg", None).is_empty());
        assert!(router.accepts_from(2, &id(1)));
        assert!(!router.accepts_from(1, &id(1)));
        assert!(router.accepts_from(0, &id(3)));
        // nas gets .raw files by rule, so it syncs that folder too.
        assert!(router.accepts_from(0, &id(2)));
        // A stranger, or a folder that does not exist.
        assert!(!router.accepts_from(0, &id(9)));
        assert!(!router.accepts_from(7, &id(1)));
        assert_eq!(router.folder_index("inbox"), Some(2));
        assert_eq!(router.folder_index("nope"), None);
    }
}
