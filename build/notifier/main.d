build/notifier/main.o: notifier/main.c common/config.h common/http.h \
 notifier/hub.h common/kq.h common/log.h common/proc.h common/config.h \
 common/token.h common/ws.h /usr/include/cjson/cJSON.h
common/config.h:
common/http.h:
notifier/hub.h:
common/kq.h:
common/log.h:
common/proc.h:
common/config.h:
common/token.h:
common/ws.h:
/usr/include/cjson/cJSON.h:
