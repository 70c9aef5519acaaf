//! Property: random layers built from hostile names, types and link targets either unpack or
//! fail, never panic, and never change anything outside `dest`.

use proptest::prelude::*;
use tar::EntryType;

use super::{Layer, Sandbox};

/// Path components: mostly names that collide with each other and with the sandbox's
/// siblings, sometimes whiteouts, now and then a climb or an empty (absolute) component.
fn component() -> impl Strategy<Value = &'static str> {
    prop_oneof![
        6 => prop::sample::select(vec!["a", "b", "canary", "outside", "."]),
        1 => prop::sample::select(vec![".wh.a", ".wh..wh..opq"]),
        1 => prop::sample::select(vec!["..", ".wh..", ""]),
    ]
}

/// Link targets, mostly inside; `@` stands for the sandbox directory, to aim absolute targets
/// at its siblings.
fn target() -> impl Strategy<Value = &'static str> {
    prop_oneof![
        4 => prop::sample::select(vec!["a", "a/b", "b/a", "canary", "."]),
        1 => prop::sample::select(vec!["..", "../canary", "../outside/secret", "/"]),
        1 => prop::sample::select(vec!["@canary", "@outside/secret", "@outside"]),
    ]
}

fn entry() -> impl Strategy<Value = (Vec<&'static str>, EntryType, &'static str)> {
    let kind = prop::sample::select(vec![
        EntryType::Regular,
        EntryType::Directory,
        EntryType::Symlink,
        EntryType::Link,
        EntryType::Fifo,
        EntryType::Char,
    ]);
    (prop::collection::vec(component(), 1..4), kind, target())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn random_hostile_layers_never_escape(entries in prop::collection::vec(entry(), 1..12)) {
        let sandbox = Sandbox::new();
        let mut layer = Layer::new();
        let sandbox_dir = sandbox.canary().parent().unwrap().to_str().unwrap().to_owned();
        for (components, kind, target) in &entries {
            let name = components.join("/");
            let target = target.replace('@', &format!("{sandbox_dir}/"));
            let content: &[u8] = if *kind == EntryType::Regular { b"x" } else { b"" };
            layer.raw(*kind, name.as_bytes(), target.as_bytes(), content);
        }
        // Either outcome is fine; what matters is that it returns and nothing escaped.
        let _ = sandbox.unpack(&layer.bytes());
        sandbox.assert_contained();
    }
}
