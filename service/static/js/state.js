/* What the page is showing, shared by the panels. */

export const state = {
  models: [], // GET /models
  token: 0, // bumped by every selection: answers for an older one are dropped
  model: null, // selected model name
  version: null, // selected version number
  card: null, // its model card (GET /models/{name}/versions/{v})
  threshold: 0.5, // the explorer's threshold (binary models)
  storedThreshold: null, // the version's stored default threshold, or null (0.5)
  prediction: null, // the last try-it answer
};
