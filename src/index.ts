/** rrm as a library: the SDK, the model and the pure admission core. */
export { requestResourceReservation, releaseResourceReservation, withReservation } from './client/sdk.js';
export type { ReservationInput, SdkOptions, HeldReservation } from './client/sdk.js';
export { RrmError, CATALOGUE, type ErrorCode } from './model/errors.js';
export { parseQuantity, formatQuantity } from './model/quantity.js';
export { parsePriority, PRIORITY_CLASSES } from './model/priority.js';
export type { ReservationHandle, ReservationRequest, Reservation } from './model/reservation.js';
export type { ResourceVector } from './model/vector.js';
