//! AFL++ entry point for [`kiln_fuzz::rpc_response`]; the body lives in the library
//! so `replay` can run it without AFL.

fn main() {
    kiln_fuzz::init();
    afl::fuzz!(|data: &[u8]| kiln_fuzz::rpc_response(data));
}
