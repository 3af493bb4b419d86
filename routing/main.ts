/**
 * Entry of the routing bundle that app_jsdt loads (kamailio/kamailio.cfg): puts the
 * callbacks Kamailio looks up by name on the global object.
 */
import { exportReplyRoute, exportRequestRoute } from "./runtime/callbacks";
import { requestRoute } from "./request-route";
import { replyRoute } from "./reply-route";
import { DIALOG_EVENT_CALLBACK, dialogEvent, localRequestEvent, TM_EVENT_CALLBACK } from "./wa/dialog-events";
import { permissionApi } from "./wa/permission-api";

exportRequestRoute("ksr_request_route", requestRoute);
exportReplyRoute("ksr_reply_route", replyRoute);
exportReplyRoute(DIALOG_EVENT_CALLBACK, dialogEvent);
exportReplyRoute(TM_EVENT_CALLBACK, localRequestEvent);
exportReplyRoute("ksr_xhttp_event", permissionApi);
