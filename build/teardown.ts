/** What the test helpers need from a tap test: a place to register their clean-up. */
export interface Teardown {
  teardown(fn: () => unknown): void;
}
