//! GPU scanner (wgpu): see issue 3. Placeholder module until it lands.
