// Starts Debian's JMeter 2.13 (see run.sh): opens XStream to JMeter's classes, then runs NewDriver.
import java.lang.reflect.Field;
import java.lang.reflect.Method;

/** Runs Debian's JMeter 2.13 with XStream >= 1.4.18, which refuses JMeter's own classes by default. */
public final class HavenJMeter {
    public static void main(String[] args) throws Exception {
        Class<?> driver = Class.forName("org.apache.jmeter.NewDriver");
        Field loaderField = driver.getDeclaredField("loader");
        loaderField.setAccessible(true);
        ClassLoader loader = (ClassLoader) loaderField.get(null);
        Thread.currentThread().setContextClassLoader(loader);
        String home = (String) driver.getMethod("getJMeterDir").invoke(null);
        Class<?> utils = Class.forName("org.apache.jmeter.util.JMeterUtils", true, loader);
        utils.getMethod("setJMeterHome", String.class).invoke(null, home);
        utils.getMethod("loadJMeterProperties", String.class).invoke(null, home + "/bin/jmeter.properties");
        Class<?> save = Class.forName("org.apache.jmeter.save.SaveService", true, loader);
        Class<?> any = Class.forName("com.thoughtworks.xstream.security.AnyTypePermission", true, loader);
        Object permission = any.getField("ANY").get(null);
        Class<?> typePermission = Class.forName("com.thoughtworks.xstream.security.TypePermission", true, loader);
        for (String name : new String[] {"JMXSAVER", "JTLSAVER"}) {
            Field field = save.getDeclaredField(name);
            field.setAccessible(true);
            Object xstream = field.get(null);
            Method add = Class.forName("com.thoughtworks.xstream.XStream", true, loader).getMethod("addPermission", typePermission);
            add.invoke(xstream, permission);
        }
        driver.getMethod("main", String[].class).invoke(null, (Object) args);
    }
}
