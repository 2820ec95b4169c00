//! AFL++ entry point for [`kiln_fuzz::p2p_transport`]; the body lives in the library
//! so `replay` can run it without AFL.

fn main() {
    kiln_fuzz::init();
    afl::fuzz!(|data: &[u8]| kiln_fuzz::p2p_transport(data));
}
