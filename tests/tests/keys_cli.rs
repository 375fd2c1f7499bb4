//! `beast keys` and `beast usage` on bad input: a message naming the problem and exit 2, and
//! nothing changed in the store.

use beast_tests::Scratch;

fn run(scratch: &Scratch, args: &[&str]) -> (Option<i32>, String, String) {
    let out = scratch.beast(args).output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn bad_key_commands_exit_2_with_a_message() {
    let scratch = Scratch::new();
    let key = scratch.create_key("basic");
    let cases: &[(&[&str], &str)] = &[
        (&["keys", "create", "--tier", "gold"], "gold"),
        (&["keys", "show", "999"], "no key 999"),
        (
            &["keys", "revoke", "bk_never_issued_000"],
            "no key with that value",
        ),
        (&["usage", "count", "--key", "x"], "--key"),
        (
            &["usage", "count", "--key", "bk_never_issued_000"],
            "no such key",
        ),
    ];
    for (args, expected) in cases {
        let (code, stdout, stderr) = run(&scratch, args);
        assert_eq!(code, Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
        assert!(stdout.is_empty(), "{args:?}: {stdout}");
    }
    let (code, _, _) = run(&scratch, &["keys", "revoke", &key]);
    assert_eq!(code, Some(0));
    let (code, _, stderr) = run(&scratch, &["keys", "revoke", &key]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("already revoked"), "{stderr}");
    let (code, stdout, _) = run(&scratch, &["keys", "list", "--format", "json"]);
    assert_eq!(code, Some(0));
    let keys: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        keys.as_array().map(Vec::len),
        Some(1),
        "nothing else was created"
    );
    assert!(!stdout.contains(&key), "a listed key shows its prefix only");
}
