/** @echogarden/fvad-wasm ships no types: an Emscripten factory exposing libfvad's C API. */
declare module "@echogarden/fvad-wasm" {
  const createFvadModule: (moduleArg?: object) => Promise<unknown>;
  export default createFvadModule;
}
