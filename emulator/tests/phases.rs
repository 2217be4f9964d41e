//! How hostcalls are linked: under which names, behind which phase checks
//! (Envoy's restrictions while the module initialises and inside
//! `proxy_on_memory_allocate`), and what traps with its name.

#![expect(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test helpers fail loudly"
)]

use proxy_wasm_emulator::{
    Emulator, FilterModule, HarnessError, HostFault, HostOptions, LogLevel, TrapCause,
};

/// A guest that imports `$imports` and exports `$exports`, with the
/// exports every proxy-wasm module has. Memory: an iovec at 0 pointing at
/// "hello\n" at 16.
fn guest(imports: &str, exports: &str) -> FilterModule {
    let wat = format!(
        r#"(module
  {imports}
  (memory (export "memory") 1)
  (data (i32.const 0) "\10\00\00\00\06\00\00\00")
  (data (i32.const 16) "hello\n")
  (func (export "proxy_abi_version_0_2_1"))
  (func (export "proxy_on_context_create") (param i32 i32))
  {exports})"#
    );
    FilterModule::from_bytes(wat.as_bytes()).unwrap()
}

const ALLOCATE: &str =
    r#"(func (export "proxy_on_memory_allocate") (param i32) (result i32) (i32.const 1024))"#;

fn trap(error: HarnessError) -> (&'static str, HostFault) {
    match error {
        HarnessError::Trapped {
            callback,
            cause: TrapCause::Host(fault),
        } => (callback, fault),
        other => panic!("not a host fault: {other:?}"),
    }
}

#[test]
fn wasi_is_linked_under_both_module_names_and_checked_under_one() {
    for module in ["wasi_snapshot_preview1", "wasi_unstable"] {
        // `fd_write` is allowed while the module initialises …
        let guest_module = guest(
            &format!(
                r#"(import "{module}" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))"#
            ),
            &format!(
                r#"{ALLOCATE}
                (func (export "_initialize")
                  (if (i32.ne (call $write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8))
                              (i32.const 0)) (then unreachable)))"#
            ),
        );
        let host = Emulator::new(&guest_module, HostOptions::default()).unwrap();
        assert_eq!(host.logs_at(LogLevel::Info), ["hello"], "{module}");

        // … `sched_yield` is not, whichever name the guest imports it by.
        let guest_module = guest(
            &format!(r#"(import "{module}" "sched_yield" (func $yield (result i32)))"#),
            &format!(r#"{ALLOCATE} (func (export "_initialize") (drop (call $yield)))"#),
        );
        let error = Emulator::new(&guest_module, HostOptions::default())
            .err()
            .unwrap();
        assert_eq!(
            trap(error),
            (
                "_initialize",
                HostFault::Restricted {
                    hostcall: "wasi_snapshot_preview1.sched_yield".into(),
                    phase: "`_initialize`/`main`",
                }
            ),
            "{module}"
        );
    }
}

#[test]
fn proc_exit_ends_the_guest_in_any_phase() {
    let module = guest(
        r#"(import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))"#,
        &format!(r#"{ALLOCATE} (func (export "_initialize") (call $exit (i32.const 3)))"#),
    );
    let error = Emulator::new(&module, HostOptions::default())
        .err()
        .unwrap();
    assert_eq!(
        trap(error),
        ("_initialize", HostFault::ProcExit { code: 3 })
    );
}

#[test]
fn only_logging_and_clocks_work_inside_proxy_on_memory_allocate() {
    // The guest's allocator asks for the log level, then the host asks it
    // for memory to return a property in.
    let module = guest(
        r#"(import "env" "proxy_get_log_level" (func $level (param i32) (result i32)))
           (import "env" "proxy_get_property" (func $property (param i32 i32 i32 i32) (result i32)))"#,
        r#"(func (export "proxy_on_memory_allocate") (param i32) (result i32)
             (drop (call $level (i32.const 512)))
             (i32.const 1024))
           (func (export "proxy_on_vm_start") (param i32 i32) (result i32)
             (drop (call $property (i32.const 16) (i32.const 5) (i32.const 600) (i32.const 604)))
             (i32.const 1))"#,
    );
    let mut host = Emulator::new(&module, HostOptions::default()).unwrap();
    host.set_property(&["hello"], "world");
    let error = host.start_vm().unwrap_err();
    assert_eq!(
        trap(error),
        (
            "proxy_on_vm_start",
            HostFault::Restricted {
                hostcall: "env.proxy_get_log_level".into(),
                phase: "`proxy_on_memory_allocate`",
            }
        )
    );
}

#[test]
fn an_import_the_host_does_not_implement_traps_with_its_name_in_any_phase() {
    let module = guest(
        r#"(import "env" "proxy_get_status" (func $status (param i32 i32 i32) (result i32)))"#,
        &format!(
            r#"{ALLOCATE} (func (export "_initialize")
                 (drop (call $status (i32.const 0) (i32.const 0) (i32.const 0))))"#
        ),
    );
    let error = Emulator::new(&module, HostOptions::default())
        .err()
        .unwrap();
    assert_eq!(
        trap(error),
        (
            "_initialize",
            HostFault::Unsupported {
                hostcall: "env.proxy_get_status".into()
            }
        )
    );
}
